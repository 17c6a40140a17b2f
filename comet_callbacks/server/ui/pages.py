"""HTML of the web UI's pages: plain server-side rendering, every value escaped.

Charts are drawn in the browser by ``app.js`` (with the vendored uPlot) from
``/ui-api/series``; everything else is in the HTML itself, so a page is readable (and
testable) before any script runs. No inline scripts or styles: the Content-Security-Policy
allows only the server's own files.
"""

from __future__ import annotations

import datetime as _dt
import json
from html import escape
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import HTMLResponse

from ..routes import Ctx
from . import graph

SYSTEM_PREFIX = "sys."


def e(value: Any) -> str:
    """Escaped text ('' for None)."""
    return "" if value is None else escape(str(value), quote=True)


def u(*parts: str) -> str:
    """A path made of quoted segments."""
    return "/" + "/".join(quote(p, safe="") for p in parts)


def when(ms: int | None) -> str:
    if not ms:
        return "—"
    return _dt.datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def duration(ms: int | None) -> str:
    if ms is None:
        return "—"
    s = int(ms // 1000)
    if s < 60:
        return f"{ms / 1000:.1f} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def size(n: int | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def badge(status: str) -> str:
    return f'<span class="badge badge-{e(status)}" data-status="{e(status)}">{e(status)}</span>'


def short(value: Any, limit: int = 60) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value: Any) -> str:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return e(value)
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return f"{f:.5g}"


def layout(
    title: str,
    body: str,
    crumbs: list[tuple[str, str | None]] | None = None,
    page: str = "",
    attrs: str = "",
    status: int = 200,
    signed_in: bool = True,
) -> HTMLResponse:
    from . import html_response

    trail = "".join(
        f'<span class="sep">/</span><a href="{e(href)}">{e(label)}</a>'
        if href
        else f'<span class="sep">/</span><span>{e(label)}</span>'
        for label, href in (crumbs or [])
    )
    logout = (
        '<form method="post" action="/logout" class="logout">'
        '<button type="submit" class="btn-link">Sign out</button></form>'
        if signed_in
        else ""
    )
    return html_response(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)} · comet-callbacks</title>
<link rel="icon" href="/ui-static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/ui-static/vendor/uPlot.min.css">
<link rel="stylesheet" href="/ui-static/app.css">
</head><body data-page="{e(page)}" {attrs}>
<header class="top"><a class="brand" href="/"><span class="logo"></span>comet-callbacks</a>
<nav class="crumbs">{trail}</nav>{logout}</header>
<main>{body}</main>
<script src="/ui-static/vendor/uPlot.iife.min.js"></script>
<script src="/ui-static/app.js"></script>
</body></html>""",
        status,
    )


def error_page(code: int, msg: str) -> HTMLResponse:
    titles = {400: "Bad request", 401: "Not signed in", 403: "No access", 404: "Not found"}
    body = (
        f'<section class="card error"><h1>{code} · {e(titles.get(code, "Error"))}</h1>'
        f'<p class="error-msg">{e(msg)}</p><p><a href="/">Back to your workspaces</a></p></section>'
    )
    return layout(titles.get(code, "Error"), body, page="error", status=code)


def login(request: Request, error: str | None, status: int = 200) -> HTMLResponse:
    token = request.query_params.get("token", "")
    nxt = request.query_params.get("next", "/")
    err = f'<p class="error-msg" role="alert">{e(error)}</p>' if error else ""
    if token and not error:
        fields = (
            f'<input type="hidden" name="token" value="{e(token)}">'
            '<p class="muted">Signing you in with the login link…</p>'
        )
        button = "Continue"
    else:
        fields = (
            '<label for="api_key">API key</label>'
            '<input id="api_key" name="api_key" type="password" autocomplete="current-password" '
            'required autofocus placeholder="the key you give COMET_API_KEY">'
        )
        button = "Sign in"
    body = f"""<section class="card login">
<h1>Sign in</h1>
<p class="muted">Use an API key of this server (the one in <code>COMET_API_KEY</code>), or open
the login link that <code>comet-callbacks server</code> printed.</p>
{err}<form method="post" action="/login" id="login-form" data-auto="{"1" if token and not error else ""}">
{fields}<input type="hidden" name="next" value="{e(nxt)}">
<button type="submit" class="btn">{button}</button></form></section>"""
    return layout("Sign in", body, page="login", status=status, signed_in=False)


# -- home and workspace ------------------------------------------------------------------------


def home(ctx: Ctx, spaces: list[dict[str, Any]], workspace: str | None = None) -> HTMLResponse:
    cards = []
    for ws in spaces:
        rows = "".join(
            f'<tr data-project="{e(p["projectName"])}"><td><a href="{u(ws["name"], p["projectName"])}">'
            f"{e(p['projectName'])}</a><div class='muted small'>{e(p['projectDescription'] or '')}</div></td>"
            f'<td class="num" data-col="count">{p["numberOfExperiments"]}</td>'
            f'<td data-sort="{p["lastUpdated"] or 0}">{when(p["lastUpdated"])}</td></tr>'
            for p in sorted(ws["projects"], key=lambda p: -(p["lastUpdated"] or 0))
        )
        table = (
            '<table class="grid sortable"><thead><tr><th>Project</th><th class="num">Experiments</th>'
            f"<th>Last activity</th></tr></thead><tbody>{rows}</tbody></table>"
            if ws["projects"]
            else '<p class="muted">No projects yet. Runs logged to this workspace appear here.</p>'
        )
        cards.append(
            f'<section class="card workspace" data-workspace="{e(ws["name"])}">'
            f'<div class="card-head"><h2><a href="{u(ws["name"])}">{e(ws["name"])}</a></h2>'
            f'<a class="pill" href="{u(ws["name"], "model-registry")}">Model registry · {ws["models"]}</a></div>'
            f"{table}</section>"
        )
    body = (
        f'<h1 class="page-title">{"Workspace " + e(workspace) if workspace else "Workspaces"}</h1>'
        + ("".join(cards) or '<p class="muted">This key may use no workspace.</p>')
    )
    crumbs: list[tuple[str, str | None]] = [(workspace, None)] if workspace else []
    return layout(workspace or "Workspaces", body, crumbs, page="home")


# -- project: the experiments table ------------------------------------------------------------


def _default_columns(info: dict[str, Any]) -> tuple[list[str], list[str]]:
    metrics = [m for m in info["metric_names"] if not m.startswith(SYSTEM_PREFIX)][:4]
    params = info["param_names"]
    differing = [
        p
        for p in params
        if len({info["params"][k].get(p) for k in info["params"]}) > 1 and len(info["params"]) > 1
    ]
    return metrics, (differing or params)[:4]


def project(
    ctx: Ctx,
    ws: str,
    name: str,
    info: dict[str, Any],
    metrics: list[str] | None = None,
    params: list[str] | None = None,
) -> HTMLResponse:
    """The experiments table; ``metrics`` / ``params`` are the chosen columns (default: the
    first user metrics, and the parameters whose values differ)."""
    default_metrics, default_params = _default_columns(info)
    metrics = default_metrics if metrics is None else metrics
    params = default_params if params is None else params
    head = (
        '<th class="sel"><input type="checkbox" id="select-all" title="select all"></th>'
        '<th>Name</th><th>Status</th><th>Started</th><th class="num">Duration</th><th>Tags</th>'
        + "".join(
            f'<th class="num metric-col">{e(m)}<div class="col-kind">metric</div></th>'
            for m in metrics
        )
        + "".join(
            f'<th class="param-col">{e(p)}<div class="col-kind">param</div></th>' for p in params
        )
    )
    rows = []
    for x in reversed(info["experiments"]):
        key = x["experimentKey"]
        tags = info["tags"][key]
        status = info["status"][key]
        cells = "".join(
            f'<td class="num" data-sort="{e(info["metrics"][key].get(m, ""))}">'
            f"{number(info['metrics'][key].get(m)) if m in info['metrics'][key] else '—'}</td>"
            for m in metrics
        ) + "".join(f"<td>{e(short(info['params'][key].get(p, '—'), 30))}</td>" for p in params)
        rows.append(
            f'<tr data-key="{e(key)}" data-name="{e(x["experimentName"] or key)}" '
            f'data-tags="{e(" ".join(tags))}" data-status="{e(status)}">'
            f'<td class="sel"><input type="checkbox" class="pick" value="{e(key)}"></td>'
            f'<td><a href="{u(ws, name, key)}">{e(x["experimentName"] or key[:9])}</a>'
            f'<div class="muted mono small">{e(key[:9])}</div></td>'
            f"<td>{badge(status)}</td>"
            f'<td data-sort="{x["startTimeMillis"]}">{when(x["startTimeMillis"])}</td>'
            f'<td class="num" data-sort="{x["durationMillis"]}">{duration(x["durationMillis"])}</td>'
            f"<td>{''.join(f'<span class=tag>{e(t)}</span>' for t in tags)}</td>{cells}</tr>"
        )
    statuses = sorted(set(info["status"].values()))
    options = "".join(f'<option value="{e(s)}">{e(s)}</option>' for s in statuses)
    desc = info["project"]["projectDescription"]
    body = f"""<div class="title-row"><h1 class="page-title">{e(name)}</h1>
<span class="muted">{len(info["experiments"])} experiments</span></div>
{f'<p class="muted">{e(desc)}</p>' if desc else ""}
<div class="toolbar">
<input type="search" id="exp-filter" placeholder="Filter by name or tag" aria-label="filter">
<select id="status-filter" aria-label="status"><option value="">Any status</option>{options}</select>
<button class="btn" id="compare-btn" disabled data-base="{u(ws, name, "compare")}">Compare selected</button>
{_column_picker(info, metrics, params)}
</div>
<div class="card flush"><table class="grid sortable" id="experiments"><thead><tr>{head}</tr></thead>
<tbody>{"".join(rows)}</tbody></table>
{"" if rows else '<p class="muted pad">No experiments in this project yet.</p>'}</div>"""
    return layout(name, body, [(ws, u(ws)), (name, None)], page="project")


def _column_picker(info: dict[str, Any], metrics: list[str], params: list[str]) -> str:
    def boxes(kind: str, names: list[str], chosen: list[str]) -> str:
        return (
            "".join(
                f'<label class="pick-col"><input type="checkbox" data-kind="{kind}" value="{e(n)}"'
                f"{' checked' if n in chosen else ''}> {e(n)}</label>"
                for n in names
            )
            or '<span class="muted small">none logged</span>'
        )

    return (
        '<details class="columns"><summary class="btn-ghost">Columns</summary><div class="menu">'
        f"<h4>Metrics (last value)</h4>{boxes('metrics', info['metric_names'], metrics)}"
        f"<h4>Parameters</h4>{boxes('params', info['param_names'], params)}"
        '<button class="btn" id="apply-columns">Apply</button></div></details>'
    )


# -- one experiment ----------------------------------------------------------------------------


def _group(name: str) -> str:
    for sep in ("/", ".", "_"):
        if sep in name.strip(sep):
            return name.strip(sep).split(sep, 1)[0]
    return "general"


def _charts(names: list[str], key: str, system: bool = False) -> str:
    groups: dict[str, list[str]] = {}
    for n in names:
        g = ".".join(n.split(".")[:2]) if system else _group(n)
        groups.setdefault(g, []).append(n)
    if not system:  # a prefix of its own is no group: those charts share one grid
        for g in [g for g, members in groups.items() if len(members) == 1 and g != "general"]:
            groups.setdefault("general", []).extend(groups.pop(g))
    out = []
    for g in sorted(groups, key=lambda g: (g == "general", g)):
        members = sorted(groups[g])
        charts = "".join(
            f'<figure class="chart" data-metric="{e(n)}" data-key="{e(key)}">'
            f'<figcaption><span class="fig-name">{e(n)}</span><span class="fig-meta"></span>'
            '</figcaption><div class="plot"></div></figure>'
            for n in members
        )
        out.append(
            f'<section class="chart-group" data-group="{e(g)}"><h3>{e(g)}</h3>'
            f'<div class="charts">{charts}</div></section>'
        )
    return "".join(out)


def _kv_table(rows: list[tuple[str, Any]], table_id: str, searchable: bool = True) -> str:
    if not rows:
        return '<p class="muted">Nothing logged.</p>'
    search = (
        f'<input type="search" class="table-filter" data-table="{table_id}" '
        f'placeholder="Search {len(rows)} values" aria-label="search">'
        if searchable
        else ""
    )
    body = "".join(
        f'<tr data-name="{e(k)}"><td class="mono">{e(k)}</td><td class="mono value">{e(v)}</td></tr>'
        for k, v in rows
    )
    return (
        f'{search}<table class="grid kv" id="{table_id}"><thead><tr><th>Name</th><th>Value</th>'
        f"</tr></thead><tbody>{body}</tbody></table>"
    )


def experiment(ctx: Ctx, info: dict[str, Any]) -> HTMLResponse:
    x = info["exp"]
    key = x["experimentKey"]
    ws, proj = x["workspaceName"], x["projectName"]
    name = x["experimentName"] or key
    user_metrics = [m for m in info["metrics"] if not m.startswith(SYSTEM_PREFIX)]
    sys_metrics = [m for m in info["metrics"] if m.startswith(SYSTEM_PREFIX)]
    git = info["git"]
    sysd = info["system"]
    others = [(o["name"], o["valueCurrent"]) for o in info["others"]]
    params = [(p["name"], p["valueCurrent"]) for p in info["params"]]
    facts = [
        ("Key", f'<span class="mono">{e(key)}</span>'),
        ("Started", e(when(x["startTimeMillis"]))),
        ("Ended", e(when(x["endTimeMillis"]))),
        ("Duration", f'<span id="duration">{e(duration(x["durationMillis"]))}</span>'),
        ("Host", e(sysd.get("hostname") or "—")),
        (
            "Git",
            e(
                " @ ".join(
                    v
                    for v in (
                        (git.get("branch") or "").removeprefix("refs/heads/"),
                        (git.get("parent") or "")[:10],
                    )
                    if v
                )
                or "—"
            ),
        ),
        ("Python", e(sysd.get("pythonVersion") or "—")),
    ]
    header = "".join(
        f"<div{' class=wide' if k == 'Key' else ''}><dt>{k}</dt><dd>{v}</dd></div>"
        for k, v in facts
    )
    tags = "".join(f'<span class="tag">{e(t)}</span>' for t in info["tags"])
    output = "".join(
        f'<div class="line{" stderr" if err else ""}">{e(text)}</div>'
        for text, err in info["output"]
    )
    assets = "".join(
        f"<tr><td>{e(a['fileName'])}</td><td>{e(a['type'])}</td><td>{e(a['step'] if a['step'] is not None else '')}</td>"
        f'<td class="num" data-sort="{a["fileSize"]}">{size(a["fileSize"])}</td>'
        + (
            f'<td><a href="{e(a["link"])}" rel="noreferrer">remote link</a></td>'
            if a["remote"]
            else f'<td><a href="/ui-api/asset?experimentKey={quote(key)}&amp;assetId={quote(a["assetId"])}">download</a></td>'
        )
        + "</tr>"
        for a in info["assets"]
    )
    models = "".join(
        f"<tr><td>{e(m['name'])}</td><td>"
        + (
            ", ".join(
                f'<a href="{u(v["workspace"], "model-registry", v["model"])}">{e(v["model"])} {e(v["version"])}</a>'
                + "".join(f' <span class="tag">{e(s)}</span>' for s in v["stages"])
                for v in m["versions"]
            )
            or '<span class="muted">not registered</span>'
        )
        + "</td></tr>"
        for m in info["models"]
    )
    git_rows = [(k, v) for k, v in git.items() if v]
    sys_rows = [
        (k, v)
        for k, v in sysd.items()
        if k not in ("experimentKey", "env") and v not in (None, [], "")
    ]
    tabs = [
        ("charts", f"Charts ({len(user_metrics)})"),
        ("system", "System"),
        ("params", f"Parameters ({len(params)})"),
        ("other", f"Other ({len(others)})"),
        ("output", "Output"),
        ("code", "Code"),
        ("git", "Git"),
        ("assets", f"Assets & models ({len(info['assets'])})"),
        ("html", "HTML"),
        ("graph", "Graph"),
    ]
    nav = "".join(
        f'<button class="tab{" active" if i == 0 else ""}" data-tab="{t}">{e(label)}</button>'
        for i, (t, label) in enumerate(tabs)
    )
    chart_controls = """<div class="toolbar chart-controls">
<label>x axis <select class="x-axis"><option value="step">step</option><option value="epoch">epoch</option>
<option value="time">wall time</option></select></label>
<label>smoothing <input type="range" class="smoothing" min="0" max="0.99" step="0.01" value="0">
<span class="smoothing-value">off</span></label>
<label><input type="checkbox" class="log-scale"> log scale</label>
<span class="muted small">drag to zoom (finer data is fetched), double-click to reset</span></div>"""
    html_part = (
        f'<iframe class="user-html" sandbox="" srcdoc="{e(info["html"])}" title="experiment HTML"></iframe>'
        if info["html"]
        else '<p class="muted">No HTML logged.</p>'
    )
    graph_part = (
        graph.render(info["graph"])
        if info["graph"]
        else '<p class="muted">No model graph logged (<code>experiment.set_model_graph(model)</code>'
        " logs one).</p>"
    )
    body = f"""<div class="title-row"><h1 class="page-title" id="exp-name">{e(name)}</h1>{badge(info["status"])}
<span class="tags">{tags}</span></div>
<dl class="facts card">{header}</dl>
<nav class="tabs">{nav}</nav>
<section class="panel" data-panel="charts">{chart_controls if user_metrics else ""}
{_charts(user_metrics, key) or '<p class="muted">No metrics logged yet.</p>'}</section>
<section class="panel" data-panel="system" hidden>{chart_controls if sys_metrics else ""}
{_charts(sys_metrics, key, system=True) or '<p class="muted">No system metrics logged.</p>'}
<h3>System details</h3>{_kv_table([(k, json.dumps(v) if isinstance(v, list | dict) else v) for k, v in sys_rows], "system-table")}</section>
<section class="panel" data-panel="params" hidden>{_kv_table(params, "params-table")}</section>
<section class="panel" data-panel="other" hidden>{_kv_table(others, "others-table")}</section>
<section class="panel" data-panel="output" hidden>
<div class="toolbar"><input type="search" class="output-filter" placeholder="Search output" aria-label="search output">
<span class="muted small"><span class="legend-stderr"></span> stderr</span></div>
<div class="output" id="output">{output or '<p class="muted">No output captured.</p>'}</div></section>
<section class="panel" data-panel="code" hidden>{f'<pre class="code">{e(info["code"])}</pre>' if info["code"] else '<p class="muted">No code captured.</p>'}</section>
<section class="panel" data-panel="git" hidden>{_kv_table(git_rows, "git-table", searchable=False)}
<p>{f'<a href="/ui-api/git-patch?experimentKey={quote(key)}">Download the git patch (zip)</a>' if info["has_patch"] else '<span class="muted">No git patch stored.</span>'}</p></section>
<section class="panel" data-panel="assets" hidden><h3>Assets</h3>
{f'<table class="grid sortable" id="assets-table"><thead><tr><th>File</th><th>Type</th><th>Step</th><th class="num">Size</th><th></th></tr></thead><tbody>{assets}</tbody></table>' if assets else '<p class="muted">No assets.</p>'}
<h3>Models</h3>{f'<table class="grid" id="models-table"><thead><tr><th>Model</th><th>Registry versions</th></tr></thead><tbody>{models}</tbody></table>' if models else '<p class="muted">No models.</p>'}</section>
<section class="panel" data-panel="html" hidden>{html_part}</section>
<section class="panel" data-panel="graph" hidden>{graph_part}</section>"""
    attrs = (
        f'data-key="{e(key)}" data-running="{"1" if info["status"] == "running" else ""}" '
        f'data-metric-count="{len(info["metrics"])}" data-output-lines="{len(info["output"])}"'
    )
    return layout(
        name, body, [(ws, u(ws)), (proj, u(ws, proj)), (name, None)], page="experiment", attrs=attrs
    )


# -- compare -----------------------------------------------------------------------------------


def compare(ctx: Ctx, ws: str, proj: str, info: dict[str, Any]) -> HTMLResponse:
    exps = info["experiments"]
    names = sorted(
        {n for x in exps for n in x["metrics"] if not n.startswith(SYSTEM_PREFIX)},
        key=lambda n: ("loss" not in n, n),
    )
    options = "".join(f'<option value="{e(n)}">{e(n)}</option>' for n in names)
    keys = ",".join(x["exp"]["experimentKey"] for x in exps)
    labels = json.dumps([x["exp"]["experimentName"] or x["exp"]["experimentKey"][:9] for x in exps])
    all_params = sorted({p for x in exps for p in x["params"]})
    head = "".join(
        f'<th><a href="{u(x["exp"]["workspaceName"], x["exp"]["projectName"], x["exp"]["experimentKey"])}">'
        f"{e(x['exp']['experimentName'] or x['exp']['experimentKey'][:9])}</a></th>"
        for x in exps
    )
    rows = []
    n_differ = 0
    for p in all_params:
        values = [x["params"].get(p) for x in exps]
        differs = len(set(values)) > 1
        n_differ += differs
        rows.append(
            f'<tr data-name="{e(p)}" class="{"differs" if differs else ""}"><td class="mono">{e(p)}</td>'
            + "".join(f'<td class="mono">{e(v if v is not None else "—")}</td>' for v in values)
            + "</tr>"
        )
    body = f"""<h1 class="page-title">Compare {len(exps)} experiments</h1>
<div class="toolbar"><label>metric <select id="compare-metric">{options}</select></label>
<label>x axis <select class="x-axis"><option value="step">step</option><option value="epoch">epoch</option>
<option value="time">wall time</option></select></label>
<label><input type="checkbox" class="log-scale"> log scale</label>
<span class="muted small">drag to zoom (finer data is fetched), double-click to reset</span></div>
<figure class="chart wide" id="compare-chart" data-keys="{e(keys)}" data-labels="{e(labels)}">
<figcaption><span class="fig-name" id="compare-name"></span><span class="fig-meta"></span></figcaption>
<div class="plot"></div></figure>
<section class="card"><div class="card-head"><h2>Parameters</h2>
<label class="small muted"><input type="checkbox" id="only-diff"> only rows that differ
({n_differ} of {len(rows)})</label></div>
{f'<table class="grid kv" id="compare-params"><thead><tr><th>Parameter</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>' if rows else '<p class="muted">No parameters logged.</p>'}</section>"""
    return layout(
        "Compare", body, [(ws, u(ws)), (proj, u(ws, proj)), ("compare", None)], page="compare"
    )


# -- model registry ----------------------------------------------------------------------------


def _versions(ws: str, m: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td class=mono>{e(v['version'])}</td><td>"
        + "".join(f'<span class="tag">{e(s)}</span>' for s in v["stages"])
        + f"</td><td>{e(v['comment'] or '')}</td><td>{when(v['createdAt'])}</td><td>"
        + (
            f'<a href="{u(v["source"]["workspace"], v["source"]["project"], v["experimentModel"]["experimentKey"])}">'
            f"{e(v['source']['name'] or v['experimentModel']['experimentKey'][:9])}</a>"
            if v["source"]
            else '<span class="muted">—</span>'
        )
        + "</td></tr>"
        for v in m["versions"]
    )
    return (
        '<table class="grid"><thead><tr><th>Version</th><th>Stages</th><th>Comment</th>'
        f"<th>Created</th><th>Source experiment</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def registry(ctx: Ctx, ws: str, models: list[dict[str, Any]]) -> HTMLResponse:
    cards = "".join(
        f'<section class="card model" data-model="{e(m["modelName"])}"><div class="card-head">'
        f'<h2><a href="{u(ws, "model-registry", m["modelName"])}">{e(m["modelName"])}</a></h2>'
        f'<span class="muted">{len(m["versions"])} version{"" if len(m["versions"]) == 1 else "s"}</span></div>'
        f'<p class="muted">{e(m["description"] or "")}</p>{_versions(ws, m)}</section>'
        for m in models
    )
    body = f'<h1 class="page-title">Model registry</h1>{cards or "<p class=muted>No registered models.</p>"}'
    return layout("Model registry", body, [(ws, u(ws)), ("model registry", None)], page="registry")


def registry_model(ctx: Ctx, ws: str, m: dict[str, Any]) -> HTMLResponse:
    notes = (
        f'<pre class="notes">{e(m["notes"])}</pre>'
        if m["notes"]
        else '<p class="muted">No notes.</p>'
    )
    body = f"""<h1 class="page-title">{e(m["modelName"])}</h1>
<p class="muted">{e(m["description"] or "")}</p>
<section class="card model" data-model="{e(m["modelName"])}"><h2>Versions</h2>{_versions(ws, m)}</section>
<section class="card"><h2>Notes</h2>{notes}</section>"""
    return layout(
        m["modelName"],
        body,
        [(ws, u(ws)), ("model registry", u(ws, "model-registry")), (m["modelName"], None)],
        page="registry-model",
    )
