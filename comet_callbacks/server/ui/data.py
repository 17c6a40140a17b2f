"""What the web UI's pages and chart requests read, through the API's own handlers.

Every function takes a :class:`~..routes.Ctx` whose principal was resolved by the API's
``authenticate``: access checks are the API's (``ctx.ws``, ``ctx.exp``), so a page shows
exactly what the same key may read through the REST API. Nothing here writes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .. import handlers_read as api
from ..routes import ROUTES, Ctx
from ..store import SERIES
from ..validate import metric_text, parse_query, text_of

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
        for key in keys:
            for name in _names(ctx, key):
                if name.startswith("sys."):
                    continue
                last = ctx.tx.row(  # the last point in logging order: one index probe
                    f"SELECT value, value_text FROM metrics WHERE {SERIES} "
                    "ORDER BY ts DESC, seq DESC LIMIT 1",
                    (key, name),
                )
                if last is not None:  # the name was just listed: only a concurrent delete
                    metrics[key][name] = metric_text(last[0], last[1])
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
    others = api.others(q)["values"]
    omap = {v["name"]: v["valueCurrent"] for v in others}
    raw_system = ctx.get_value(key, "system_details")
    system = json.loads(raw_system) if raw_system else {}
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
        "metrics": metric_names(ctx, key),
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


def _names(ctx: Ctx, key: str) -> list[str]:
    """Metric names of ``key``, sorted: its series (a metric of a million points costs no
    more than one of ten)."""
    rows = ctx.tx.all("SELECT name FROM series WHERE exp_key=? ORDER BY name", (key,))
    return [r[0] for r in rows]


def metric_names(ctx: Ctx, key: str) -> list[str]:
    """The experiment's metric names, sorted (the API's summary would read every point)."""
    api.metadata(with_query(ctx, experimentKey=key))  # access check (404/403)
    return _names(ctx, key)


def live(ctx: Ctx, key: str) -> dict[str, Any]:
    """What a running experiment's page polls: status and how much there is."""
    q = with_query(ctx, experimentKey=key)
    exp = api.metadata(q)
    lines = ctx.tx.row("SELECT COUNT(*) FROM output WHERE exp_key=?", (key,))[0]
    return {
        "status": status_of(exp, others_map(ctx, key)),
        "metricNames": len(_names(ctx, key)),
        "outputLines": lines,
        "durationMillis": exp["durationMillis"],
    }


#: One chart answer: x values, y values, and the number of points in the range.
Points = tuple[list[float], list[float], int]
#: Answers kept for repeated requests (a page opened again, a live page's poll).
RESULT_CACHE = 64
#: A kept answer is checked for new points of its metric by scanning the rows stored since
#: it was made when there are at most this many; beyond that it is computed again.
RECHECK_ROWS = 200_000
#: x columns with an index led by ``(series, column)``: each bucket is a range scan.
INDEXED_X = ("step", "ts")
_KEEP = SERIES + " AND value IS NOT NULL AND {col} IS NOT NULL"


def downsample(
    xs: Sequence[float], ys: Sequence[float], lo: float | None, hi: float | None, points: int
) -> Points:
    """Of points sorted by x, those with ``lo <= x <= hi``: all of them when there are at
    most ``points``, else the minimum and the maximum of each of ``points // 2`` equal-width
    x buckets (in x order). Returns ``(xs, ys, number of points in the range)``.

    Used for the epoch axis (it has no index); the other axes get the same buckets from
    SQLite (:func:`sql_downsample`)."""
    i0 = 0 if lo is None else bisect_left(xs, lo)
    i1 = len(xs) if hi is None else bisect_right(xs, hi)
    n = max(0, i1 - i0)
    if n <= points:
        return list(xs[i0:i1]), list(ys[i0:i1]), n
    buckets = points // 2
    x0, x1 = xs[i0], xs[i1 - 1]
    width = (x1 - x0) / buckets
    out_x: list[float] = []
    out_y: list[float] = []
    start = i0
    for b in range(buckets):
        end = i1 if b == buckets - 1 else bisect_right(xs, x0 + (b + 1) * width, start, i1)
        if end <= start:
            continue
        seg = ys[start:end]
        lo_i = seg.index(min(seg))
        hi_i = seg.index(max(seg))
        for j in (lo_i, hi_i) if lo_i < hi_i else (hi_i, lo_i) if hi_i < lo_i else (lo_i,):
            out_x.append(xs[start + j])
            out_y.append(seg[j])
        start = end
    return out_x, out_y, n


def sql_downsample(
    conn: sqlite3.Connection,
    key: str,
    name: str,
    col: str,
    lo: float | None,
    hi: float | None,
    points: int,
) -> Points:
    """:func:`downsample` computed by SQLite, on an x column with an index (``INDEXED_X``).

    Each bucket costs two range scans of the index: its minimum with that point's x, then
    its maximum (``MIN()``/``MAX()`` with bare columns: they come from the extreme's row, the
    first such row in index order, which is x then logging order as in :func:`downsample`).
    On the step axis ``metrics_step`` holds the value, so the table itself is not read;
    nothing of the range is loaded into Python.
    """
    keep = _KEEP.format(col=col)
    where = keep
    args: list[Any] = [key, name]
    if lo is not None:
        where += f" AND {col}>=?"
        args.append(lo)
    if hi is not None:
        where += f" AND {col}<=?"
        args.append(hi)
    fits = conn.execute(  # reads at most points + 1 index entries
        f"SELECT COUNT(*) FROM (SELECT 1 FROM metrics WHERE {where} LIMIT ?)", (*args, points + 1)
    ).fetchone()[0]
    if fits <= points:
        rows = conn.execute(
            f"SELECT {col}, value FROM metrics WHERE {where} ORDER BY {col}, seq", args
        ).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows], len(rows)
    ends = f"SELECT {col} FROM metrics WHERE {where} ORDER BY {col}"
    x0 = conn.execute(ends + " LIMIT 1", args).fetchone()[0]
    x1 = conn.execute(ends + " DESC LIMIT 1", args).fetchone()[0]
    buckets = points // 2
    width = (x1 - x0) / buckets
    # bucket b holds x0 + b*width < x <= x0 + (b+1)*width (the first one x0 too, the last one
    # everything up to x1), its bounds computed as downsample() computes them
    bounds = [x0] + [x0 + (b + 1) * width for b in range(buckets - 1)] + [x1]
    sql = {
        (agg, op): f"SELECT {col}, {agg}(value), seq, COUNT(*) FROM metrics WHERE {keep} "
        f"AND {col}{op}? AND {col}<=?"
        for agg in ("MIN", "MAX")
        for op in (">=", ">")
    }
    total = 0
    out_x: list[float] = []
    out_y: list[float] = []
    for b in range(buckets):
        span = (key, name, bounds[b], bounds[b + 1])
        op = ">=" if b == 0 else ">"
        x_lo, y_lo, seq_lo, count = conn.execute(sql["MIN", op], span).fetchone()
        if not count:
            continue
        total += count
        if count > 1:
            x_hi, y_hi, seq_hi, _ = conn.execute(sql["MAX", op], span).fetchone()
        if count == 1 or y_lo == y_hi:  # one value in the bucket: one point
            out_x.append(x_lo)
            out_y.append(y_lo)
        elif (x_hi, seq_hi) < (x_lo, seq_lo):  # in x order, then logging order
            out_x += (x_hi, x_lo)
            out_y += (y_hi, y_lo)
        else:
            out_x += (x_lo, x_hi)
            out_y += (y_lo, y_hi)
    return out_x, out_y, total


class SeriesReader:
    """Chart data read straight from SQLite, downsampled there (see :func:`sql_downsample`):
    a metric of a million points is never loaded into the server's memory.

    Reads run on a read-only connection per thread (WAL: each answer comes from one snapshot,
    and readers never block the API's writers). The last answers are kept: one is reused
    while no point of its metric was stored since (``seq`` only grows, so the rows stored
    since are a short row-id range at the end of the table).
    """

    def __init__(self, db_path: str | os.PathLike[str], cache_size: int = RESULT_CACHE) -> None:
        self.db_path = str(db_path)
        self.cache_size = cache_size
        self._local = threading.local()
        self._lock = threading.Lock()
        self._answers: OrderedDict[tuple[Any, ...], tuple[int, Points]] = OrderedDict()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            path = Path(self.db_path).resolve().as_posix()
            conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, check_same_thread=False)
            conn.execute("PRAGMA mmap_size=268435456")  # big reads without copying pages
            self._local.conn = conn
        return conn

    def read(
        self, key: str, name: str, col: str, lo: float | None, hi: float | None, points: int
    ) -> tuple[str, Points]:
        """``(x column used, (xs, ys, total))``: metric ``name`` of ``key`` on x column
        ``col`` (``ts`` when the metric has no value there) for ``lo <= x <= hi``."""
        conn = self._conn()
        conn.execute("BEGIN")  # one snapshot for the whole answer
        try:
            if col != "ts" and not _has_x(conn, key, name, col):
                col = "ts"
            ident = (key, name, col, lo, hi, points)
            top = conn.execute("SELECT MAX(seq) FROM metrics").fetchone()[0] or 0
            with self._lock:
                kept = self._answers.pop(ident, None)
            if kept is not None and not _changed(conn, key, name, kept[0], top):
                answer = kept[1]
            elif col in INDEXED_X:
                answer = sql_downsample(conn, key, name, col, lo, hi, points)
            else:
                rows = conn.execute(
                    f"SELECT {col}, value FROM metrics WHERE {_KEEP.format(col=col)} "
                    f"ORDER BY {col}, seq",
                    (key, name),
                ).fetchall()
                answer = downsample([r[0] for r in rows], [r[1] for r in rows], lo, hi, points)
        finally:
            conn.execute("COMMIT")
        with self._lock:
            self._answers[ident] = (top, answer)
            while len(self._answers) > self.cache_size:
                self._answers.popitem(last=False)
        return col, answer


def _has_x(conn: sqlite3.Connection, key: str, name: str, col: str) -> bool:
    sql = f"SELECT 1 FROM metrics WHERE {_KEEP.format(col=col)} LIMIT 1"
    return conn.execute(sql, (key, name)).fetchone() is not None


def _changed(conn: sqlite3.Connection, key: str, name: str, since: int, top: int) -> bool:
    """Whether a point of ``name`` may have been stored after row ``since`` (up to ``top``)."""
    if top == since:
        return False
    if top - since > RECHECK_ROWS:
        return True
    row = conn.execute(  # a row-id range: the new rows only, never an index
        "SELECT 1 FROM metrics NOT INDEXED WHERE seq>? AND seq<=? AND exp_key=? AND name=? LIMIT 1",
        (since, top, key, name),
    ).fetchone()
    return row is not None


def series(
    reader: SeriesReader,
    key: str,
    name: str,
    x: str = "step",
    lo: float | None = None,
    hi: float | None = None,
    points: int = TARGET_POINTS,
) -> dict[str, Any]:
    """One metric's points for a chart, at most about ``points`` of them.

    Points with a finite value inside ``[lo, hi]`` on the chosen x axis are sent; when there
    are more than ``points``, the range is cut into ``points / 2`` buckets and each keeps its
    minimum and its maximum (so spikes stay visible). ``total`` is the number of points in
    the range, ``exact`` whether every one of them was sent. When the metric has no value on
    that axis (no steps logged), wall time is used and ``x`` says so. The caller checks
    access first (this runs outside the store's transaction).
    """
    col = X_COLUMNS.get(x, "step")
    points = max(10, min(int(points), 20_000))
    used, (xs, ys, total) = reader.read(key, name, col, lo, hi, points)
    x = "time" if used == "ts" else x
    xs = [int(v) if isinstance(v, float) and v.is_integer() else v for v in xs]
    return {"name": name, "x": x, "xs": xs, "ys": ys, "total": total, "exact": total <= points}


def compare(ctx: Ctx, keys: list[str]) -> dict[str, Any]:
    """The selected experiments with their parameters and metric names (access-checked)."""
    exps = []
    for key in keys:
        q = with_query(ctx, experimentKey=key)
        meta = api.metadata(q)
        params = {v["name"]: v["valueCurrent"] for v in api.parameters(q)["values"]}
        names = metric_names(ctx, key)
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
