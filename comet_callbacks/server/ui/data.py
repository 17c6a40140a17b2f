"""What the web UI's pages and chart requests read, through the API's own handlers.

Every function takes a :class:`~..routes.Ctx` whose principal was resolved by the API's
``authenticate``: access checks are the API's (``ctx.ws``, ``ctx.exp``), so a page shows
exactly what the same key may read through the REST API. Nothing here writes.
"""

from __future__ import annotations

import json
import operator
import os
import sqlite3
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import quote

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
        for key in keys:
            for name in _names(ctx, key):
                if name.startswith("sys."):
                    continue
                last = ctx.tx.row(  # the last point in logging order: one index probe
                    "SELECT value_text FROM metrics WHERE exp_key=? AND name=? "
                    "ORDER BY ts DESC, seq DESC LIMIT 1",
                    (key, name),
                )
                if last is not None:  # the name was just listed: only a concurrent delete
                    metrics[key][name] = last[0]
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
    """Metric names of ``key``, sorted: one probe of the ``(exp_key, name, ts)`` index per
    name (a skip scan), so a metric of a million points costs no more than one of ten."""
    names: list[str] = []
    row = ctx.tx.one("SELECT MIN(name) FROM metrics WHERE exp_key=?", (key,))
    while row is not None and row[0] is not None:
        names.append(row[0])
        row = ctx.tx.one("SELECT MIN(name) FROM metrics WHERE exp_key=? AND name>?", (key, row[0]))
    return names


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


class Series:
    """One metric's points on one x axis, sorted by x: two ``array('d')`` held as one pair
    (replaced whole, so a reader in another thread always sees matching arrays), plus the
    largest ``seq`` of the table when they were read (later points have a larger one)."""

    __slots__ = ("pair", "max_seq", "full")

    def __init__(self) -> None:
        self.pair: tuple[array[float], array[float]] = (array("d"), array("d"))
        self.max_seq = 0
        #: the downsampled whole range ``(points, size, result)``: what every page open asks
        self.full: tuple[int, int, tuple[list[float], list[float], int]] | None = None

    def add(self, rows: list[tuple[float, float]], max_seq: int) -> None:
        """Append ``(x, y)`` rows, keeping x order (a merge when they arrive out of order)."""
        self.max_seq = max_seq
        if not rows:
            return
        xs = [r[0] for r in rows]  # (two comprehensions cost a tenth of zip(*rows))
        ys = [r[1] for r in rows]
        old_x, old_y = self.pair
        in_order = not old_x or xs[0] >= old_x[-1]
        if in_order and all(map(operator.le, xs, islice(xs, 1, None))):
            new_x, new_y = array("d", old_x), array("d", old_y)
            new_x.extend(xs)
            new_y.extend(ys)
        else:
            merged = sorted([*zip(old_x, old_y, strict=True), *rows], key=lambda p: p[0])
            new_x = array("d", [p[0] for p in merged])
            new_y = array("d", [p[1] for p in merged])
        self.pair = (new_x, new_y)

    @property
    def size(self) -> int:
        return len(self.pair[0])


class SeriesCache:
    """Chart data, read once per metric and kept (sorted by x) in memory.

    The points are read on a read-only connection of this thread (WAL: it sees the last
    commit and never blocks the API's writers). A cached series is brought up to date with
    the points stored since it was read: ``seq`` only grows, so those are a short range of
    row ids at the end of the table. At most ``max_points`` points are kept, least recently
    used series dropped first.
    """

    def __init__(self, db_path: str | os.PathLike[str], max_points: int = 8_000_000) -> None:
        self.db_path = str(db_path)
        self.max_points = max_points
        self._local = threading.local()
        self._lock = threading.Lock()
        self._series: OrderedDict[tuple[str, str, str], Series] = OrderedDict()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            path = Path(self.db_path).resolve().as_posix()
            conn = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, check_same_thread=False)
            conn.execute("PRAGMA mmap_size=268435456")  # big reads without copying pages
            self._local.conn = conn
        return conn

    def get(self, key: str, name: str, col: str) -> Series:
        conn = self._conn()
        ident = (key, name, col)
        with self._lock:
            series = self._series.pop(ident, None)
        conn.execute("BEGIN")  # one snapshot for the whole read
        try:
            top = conn.execute("SELECT MAX(seq) FROM metrics").fetchone()[0] or 0
            keep = f"exp_key=? AND name=? AND value IS NOT NULL AND {col} IS NOT NULL"
            if series is None:
                series = Series()
                rows = conn.execute(
                    f"SELECT {col}, value FROM metrics WHERE {keep} AND seq<=?", (key, name, top)
                ).fetchall()
                series.add(rows, top)
            elif top > series.max_seq:
                rows = conn.execute(  # a row-id range: the new rows only, never the index
                    f"SELECT {col}, value FROM metrics NOT INDEXED WHERE seq>? AND seq<=? AND "
                    f"{keep} ORDER BY seq",
                    (series.max_seq, top, key, name),
                ).fetchall()
                series.add(rows, top)
        finally:
            conn.execute("COMMIT")
        with self._lock:
            self._series[ident] = series
            total = sum(s.size for s in self._series.values())
            while total > self.max_points and len(self._series) > 1:
                _, dropped = self._series.popitem(last=False)
                total -= dropped.size
        return series


def downsample(
    xs: array[float], ys: array[float], lo: float | None, hi: float | None, points: int
) -> tuple[list[float], list[float], int]:
    """The points with ``lo <= x <= hi``: all of them when there are at most ``points``, else
    the minimum and the maximum of each of ``points // 2`` equal-width x buckets (in x order).
    Returns ``(xs, ys, number of points in the range)``."""
    i0 = 0 if lo is None else bisect_left(xs, lo)
    i1 = len(xs) if hi is None else bisect_right(xs, hi)
    n = max(0, i1 - i0)
    if n <= points:
        return xs[i0:i1].tolist(), ys[i0:i1].tolist(), n
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


def series(
    cache: SeriesCache,
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
    data = cache.get(key, name, col)
    if not data.size and col != "ts":
        x, data = "time", cache.get(key, name, "ts")
    points = max(10, min(int(points), 20_000))
    all_x, all_y = data.pair
    full = data.full
    if lo is None and hi is None:
        if full is None or full[:2] != (points, len(all_x)):
            full = data.full = (points, len(all_x), downsample(all_x, all_y, None, None, points))
        xs, ys, total = full[2]
    else:
        xs, ys, total = downsample(all_x, all_y, lo, hi, points)
    xs = [int(v) if v.is_integer() else v for v in xs]
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
