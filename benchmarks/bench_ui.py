"""Web UI: how fast the experiment page opens with a 1,000,000-point metric.

Run: ``python -m benchmarks.bench_ui [--points 1000000] [--reps 3]``. Prints a Markdown table.
Needs Debian's ``chromium`` and the ``playwright`` package (the ``test`` extra).

The server runs in its own process (``python -m comet_callbacks.server``, through
:class:`benchmarks.server.LocalServer`). One experiment holds a metric of ``--points`` points
(written straight into the server's SQLite file in one transaction: a million HTTP writes
would measure the write path, not the UI); another, the baseline in the same run, holds a
1,000-point metric. Measured for each:

- ``first open``: headless Chromium, from navigation start until the chart has drawn its
  points (``data-points`` set on the figure, after uPlot rendered), the first time: SQLite
  computes the buckets from its index; with the server process's CPU time for it (what the
  wall time would be on an idle machine, as the 2-core CI box is often shared);
- ``open again``: the same, median of ``--reps`` (the answer is kept while the metric does
  not change);
- ``data``: ``GET /ui-api/series`` for the whole range again (what the page fetches: about
  2,000 points, min and max per bucket; the server keeps the answer while the metric does
  not change), median of ``--reps``;
- ``zoom``: the same for a tenth of the x range (what a drag-zoom fetches), a different
  tenth each time (computed afresh), median of ``--reps``.
"""

from __future__ import annotations

import argparse
import math
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import psutil
import requests

from benchmarks.server import LocalServer
from comet_callbacks.server.store import series_ids

CHROMIUM = "/usr/bin/chromium"


def _seed(db: Path, key: str, name: str, n: int) -> None:
    conn = sqlite3.connect(db, timeout=30)
    ts = int(time.time() * 1000)
    with conn:
        series = series_ids(conn, key, (name,))[name]
        conn.executemany(
            "INSERT INTO metrics (exp_key, name, value, value_text, ts, step, epoch, context, "
            "system, series) VALUES (?,?,?,?,?,?,NULL,NULL,0,?)",
            (
                (key, name, v, repr(v), ts + i, i, series)
                for i in range(n)
                for v in (math.exp(-i / (n / 5)) + 0.05 * math.sin(i / 7.0),)
            ),
        )
    conn.close()


def _timed_get(url: str, key: str, **params: object) -> tuple[float, int]:
    t0 = time.perf_counter()
    r = requests.get(url, params=params, headers={"Authorization": key}, timeout=60)
    elapsed = time.perf_counter() - t0
    r.raise_for_status()
    return elapsed, len(r.json()["xs"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        srv = LocalServer(tmp)
        url, key = srv.url, srv.api_key
        try:
            exps = {}
            sizes = {"baseline": 1_000, "big": args.points}
            t0 = time.perf_counter()
            for name, n in sizes.items():
                r = requests.post(
                    url + "/api/rest/v2/write/experiment/create",
                    json={"workspaceName": "local", "projectName": "bench", "experimentName": name},
                    headers={"Authorization": key},
                    timeout=30,
                )
                exps[name] = r.json()["experimentKey"]
                _seed(Path(tmp) / "comet.sqlite", exps[name], "loss", n)
            print(f"seeded {sum(sizes.values()):,} points in {time.perf_counter() - t0:.1f} s")
            server = psutil.Process(srv.pid)
            series = url + "/ui-api/series"
            rows = []
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                ctx = browser.new_context(extra_http_headers={"Authorization": key})
                page = ctx.new_page()
                page.goto(f"{url}/local/bench")  # warm-up: browser, static files
                chart = 'figure.chart[data-metric="loss"][data-points]'

                def open_page(exp: str) -> float:
                    page.goto("about:blank")
                    t0 = time.perf_counter()
                    page.goto(f"{url}/local/bench/{exp}")
                    page.wait_for_selector(chart, timeout=120_000)
                    return time.perf_counter() - t0

                for name, n in sizes.items():
                    exp = exps[name]
                    cpu0 = sum(server.cpu_times()[:2])
                    cold = open_page(exp)  # the first open computes the buckets
                    cold_cpu = sum(server.cpu_times()[:2]) - cpu0
                    warm = statistics.median(open_page(exp) for _ in range(args.reps))
                    drawn = int(page.get_attribute(chart, "data-points") or 0)
                    data = statistics.median(
                        _timed_get(series, key, experimentKey=exp, metricName="loss")[0]
                        for _ in range(args.reps)
                    )
                    zooms = [  # a new range each time: answers are kept for repeats
                        _timed_get(
                            series,
                            key,
                            experimentKey=exp,
                            metricName="loss",
                            min=n // 2 + rep * (n // 100),
                            max=n // 2 + rep * (n // 100) + n // 10,
                        )
                        for rep in range(args.reps)
                    ]
                    zoom = statistics.median(z for z, _ in zooms)
                    rows.append((name, n, drawn, cold, cold_cpu, warm, data, zoom, zooms[0][1]))
                browser.close()
        finally:
            srv.stop()
    base = rows[0]
    load = os.getloadavg()[0]
    print(f"(machine: {os.cpu_count()} CPUs, load average {load:.1f} at the end of the run)")
    print(
        "| metric | points stored | points drawn | first open | server CPU, first open "
        "| open again | data request | zoom (10 %) | zoom points | first open vs 1k |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n, drawn, cold, cold_cpu, warm, data, zoom, zoom_n in rows:
        print(
            f"| {name} | {n:,} | {drawn:,} | {cold:.2f} s | {cold_cpu:.2f} s | {warm:.2f} s "
            f"| {data * 1000:.0f} ms | {zoom * 1000:.0f} ms | {zoom_n:,} | {cold / base[3]:.1f}x |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
