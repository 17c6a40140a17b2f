"""What the web UI's pages and chart requests read, through the API's own handlers.

Every function takes a :class:`~..routes.Ctx` whose principal was resolved by the API's
``authenticate``: access checks are the API's (``ctx.ws``, ``ctx.exp``), so a page shows
exactly what the same key may read through the REST API. Nothing here writes.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from .. import handlers_read as api
from ..routes import ROUTES, Ctx
from ..validate import parse_query, text_of

#: Every query argument of the read routes (all optional here: the handlers check).
_ALL_QUERY_KEYS: dict[str, Any] = {
    k if k.endswith("?") else k + "?": v
    for rt in ROUTES
    if "GET" in rt.methods and rt.query
    for k, v in rt.query.items()
}

#: Points per series sent to a chart for the visible range (min and max per bucket).
TARGET_POINTS = 2000
#: The x axes a chart may use, as SQL over the ``metrics`` table.
X_COLUMNS = {"step": "step", "epoch": "epoch", "time": "ts"}


def with_query(ctx: Ctx, **query: Any) -> Ctx:
    """``ctx`` with another query (handlers read their arguments from ``ctx.query``).

    The arguments go through the API's own query parsing (every key a handler reads is
    present, optional ones as ``None``).
    """
    ctx.raw_query = {
        k: (str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in query.items()
        if v is not None
    }
    ctx.query = parse_query(_ALL_QUERY_KEYS, ctx.raw_query)
    return ctx


def status_of(exp: dict[str, Any], others: dict[str, str]) -> str:
    """One word for the badge: running, success, failed, interrupted or crashed."""
    if exp["running"]:
        return "running"
    logged = (others.get("status") or "").lower()
    if logged in ("success", "failed", "interrupted", "crashed"):
        return logged
    if exp["hasCrashed"]:
        return "crashed"
    return "finished" if exp["endTimeMillis"] else "unknown"


def others_map(ctx: Ctx, key: str) -> dict[str, str]:
    values = api.others(with_query(ctx, experimentKey=key))["values"]
    return {v["name"]: v["valueCurrent"] for v in values}


def home(ctx: Ctx) -> list[dict[str, Any]]:
    """Each workspace the key may use with its projects and registered-model count."""
    out = []
    for ws in api.workspaces(ctx)["workspaceNames"]:
        projects = api.projects(with_query(ctx, workspaceName=ws))["projects"]
        models = api.registry_models(with_query(ctx, workspaceName=ws))["registryModels"]
        out.append({"name": ws, "projects": projects, "models": len(models)})
    return out


def experiments(ctx: Ctx, workspace: str, project: str) -> dict[str, Any]:
    """The experiments table: rows plus the metric and parameter names available as columns."""
    proj = api.project(with_query(ctx, workspaceName=workspace, projectName=project))
    rows = api.experiments(
        with_query(ctx, workspaceName=workspace, projectName=project, archived=False)
    )["experiments"]
    keys = [r["experimentKey"] for r in rows]
    metrics: dict[str, dict[str, str]] = {k: {} for k in keys}
    params: dict[str, dict[str, str]] = {k: {} for k in keys}
    tags: dict[str, list[str]] = {k: [] for k in keys}
    statuses: dict[str, str] = {}
    if keys:
        marks = ",".join("?" * len(keys))
        for r in ctx.tx.all(
            f"SELECT exp_key, name, value_text FROM metrics WHERE seq IN (SELECT MAX(seq) "
            f"FROM metrics WHERE exp_key IN ({marks}) AND system=0 GROUP BY exp_key, name)",
            keys,
        ):
            metrics[r["exp_key"]][r["name"]] = r["value_text"]
        for r in ctx.tx.all(
            f"SELECT exp_key, name, value FROM params WHERE seq IN (SELECT MAX(seq) FROM params "
            f"WHERE exp_key IN ({marks}) GROUP BY exp_key, name)",
            keys,
        ):
            params[r["exp_key"]][r["name"]] = text_of(json.loads(r["value"]))
        for r in ctx.tx.all(
            f"SELECT exp_key, tag FROM tags WHERE exp_key IN ({marks}) ORDER BY seq", keys
        ):
            tags[r["exp_key"]].append(r["tag"])
        for r in rows:
            statuses[r["experimentKey"]] = status_of(r, others_map(ctx, r["experimentKey"]))
    return {
        "project": proj,
        "experiments": rows,
        "metrics": metrics,
        "params": params,
        "tags": tags,
        "status": statuses,
        "metric_names": sorted({n for m in metrics.values() for n in m}),
        "param_names": sorted({n for p in params.values() for n in p}),
    }


def experiment(ctx: Ctx, key: str) -> dict[str, Any]:
    """Everything the experiment page shows (charts load their points separately)."""
    q = with_query(ctx, experimentKey=key)
    exp = api.metadata(q)
    summary = api.metric_summary(q)["values"]
    others = api.others(q)["values"]
    omap = {v["name"]: v["valueCurrent"] for v in others}
    system = api.system_details(q)
    output = [
        (r["text"], bool(r["stderr"]))
        for r in ctx.tx.all("SELECT text, stderr FROM output WHERE exp_key=? ORDER BY seq", (key,))
    ]
    models = []
    for m in api.exp_models(q)["models"]:
        versions = ctx.tx.all(
            "SELECT i.version, i.stages, rm.name, rm.workspace FROM registry_items i "
            "JOIN registry_models rm ON rm.id = i.model_id WHERE i.exp_model_id=? "
            "ORDER BY i.created_at, i.rowid",
            (m["experimentModelId"],),
        )
        models.append(
            {
                "name": m["modelName"],
                "versions": [
                    {
                        "model": v["name"],
                        "workspace": v["workspace"],
                        "version": v["version"],
                        "stages": json.loads(v["stages"]),
                    }
                    for v in versions
                ],
            }
        )
    patch = ctx.get_value(key, "git_patch")
    return {
        "exp": exp,
        "status": status_of(exp, omap),
        "metrics": summary,
        "params": api.parameters(q)["values"],
        "others": others,
        "tags": api.tags(q)["tags"],
        "system": system,
        "git": api.git_metadata(q),
        "has_patch": patch is not None,
        "assets": api.asset_list(with_query(ctx, experimentKey=key, type=None))["assets"],
        "models": models,
        "output": output,
        "code": api.code(q)["code"],
        "html": api.html(q)["html"],
        "graph": api.graph(q)["graph"],
    }


def live(ctx: Ctx, key: str) -> dict[str, Any]:
    """What a running experiment's page polls: status and how much there is."""
    q = with_query(ctx, experimentKey=key)
    exp = api.metadata(q)
    counts = ctx.tx.one(
        "SELECT (SELECT COUNT(DISTINCT name) FROM metrics WHERE exp_key=?), "
        "(SELECT COUNT(*) FROM output WHERE exp_key=?)",
        (key, key),
    )
    return {
        "status": status_of(exp, others_map(ctx, key)),
        "metricNames": counts[0],
        "outputLines": counts[1],
        "durationMillis": exp["durationMillis"],
    }


def series(
    ctx: Ctx,
    key: str,
    name: str,
    x: str = "step",
    lo: float | None = None,
    hi: float | None = None,
    points: int = TARGET_POINTS,
) -> dict[str, Any]:
    """One metric's points for a chart, at most about ``points`` of them.

    Points with a finite value inside ``[lo, hi]`` on the chosen x axis are read; when there
    are more than ``points``, the range is cut into ``points / 2`` buckets and each keeps its
    minimum and its maximum (so spikes stay visible). ``total`` is the number of points in
    the range, ``exact`` whether every one of them was sent. When the metric has no value on
    that axis (no steps logged), wall time is used and ``x`` says so.
    """
    api.metadata(with_query(ctx, experimentKey=key))  # access check (404/403)
    col = X_COLUMNS.get(x, "step")
    has_x = ctx.tx.one(
        f"SELECT 1 FROM metrics WHERE exp_key=? AND name=? AND {col} IS NOT NULL LIMIT 1",
        (key, name),
    )
    if has_x is None:
        x, col = "time", "ts"
    where = f"exp_key=? AND name=? AND value IS NOT NULL AND {col} IS NOT NULL"
    args: list[Any] = [key, name]
    if lo is not None:
        where += f" AND {col} >= ?"
        args.append(lo)
    if hi is not None:
        where += f" AND {col} <= ?"
        args.append(hi)
    total, xmin, xmax = ctx.tx.one(
        f"SELECT COUNT(*), MIN({col}), MAX({col}) FROM metrics WHERE {where}", args
    )
    points = max(10, min(int(points), 20_000))
    if total <= points or xmin == xmax:
        rows: list[sqlite3.Row] | list[tuple[Any, ...]] = ctx.tx.all(
            f"SELECT {col}, value FROM metrics WHERE {where} ORDER BY {col}, ts, seq LIMIT ?",
            [*args, points],
        )
        xs = [r[0] for r in rows]
        ys = [r[1] for r in rows]
        return {"name": name, "x": x, "xs": xs, "ys": ys, "total": total, "exact": total <= points}
    buckets = points // 2
    width = (xmax - xmin) / buckets
    inner = (
        f"SELECT MIN(CAST(({col} - ?) / ? AS INTEGER), ?) AS b, {col} AS x, value AS y "
        f"FROM metrics WHERE {where}"
    )
    # SQLite returns the other columns of the row holding the single MIN()/MAX(): the x of
    # each bucket's extremes, so spikes are drawn where they happened
    merged: dict[int, list[tuple[Any, Any]]] = {}
    for agg in ("MIN", "MAX"):
        for b, y, px in ctx.tx.all(
            f"SELECT b, {agg}(y), x FROM ({inner}) GROUP BY b", [xmin, width, buckets - 1, *args]
        ):
            merged.setdefault(b, []).append((px, y))
    xs, ys = [], []
    for b in sorted(merged):
        pair = sorted(set(merged[b]), key=lambda p: p[0])
        for px, py in pair:
            xs.append(px)
            ys.append(py)
    return {"name": name, "x": x, "xs": xs, "ys": ys, "total": total, "exact": False}


def compare(ctx: Ctx, keys: list[str]) -> dict[str, Any]:
    """The selected experiments with their parameters and metric names (access-checked)."""
    exps = []
    for key in keys:
        q = with_query(ctx, experimentKey=key)
        meta = api.metadata(q)
        params = {v["name"]: v["valueCurrent"] for v in api.parameters(q)["values"]}
        names = [v["name"] for v in api.metric_summary(q)["values"]]
        exps.append({"exp": meta, "params": params, "metrics": names})
    return {"experiments": exps}


def registry(ctx: Ctx, workspace: str) -> list[dict[str, Any]]:
    """Registered models of a workspace, each with its versions."""
    out = []
    for m in api.registry_models(with_query(ctx, workspaceName=workspace))["registryModels"]:
        out.append(registry_model(ctx, workspace, m["modelName"]))
    return out


def registry_model(ctx: Ctx, workspace: str, name: str) -> dict[str, Any]:
    details = api.registry_details(with_query(ctx, workspaceName=workspace, modelName=name))
    notes = api.registry_notes(with_query(ctx, workspaceName=workspace, modelName=name))["notes"]
    for v in details["versions"]:
        key = v["experimentModel"]["experimentKey"]
        row = ctx.tx.one(
            "SELECT e.name, p.name AS project, p.workspace FROM experiments e "
            "JOIN projects p ON p.id = e.project_id WHERE e.key=? AND e.deleted=0",
            (key,),
        )
        v["source"] = (
            dict(row) if row is not None and row["workspace"] in ctx.me.workspaces else None
        )
    details["notes"] = notes
    return details
