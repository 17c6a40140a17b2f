"""Throughput of the local server: metric writes per second with 1 and 8 clients.

Run: ``python -m benchmarks.bench_server [--seconds 3]``. Prints a Markdown table.
The server runs in its own process (:class:`benchmarks.server.LocalServer`), the clients are
threads here, each with its own ``requests.Session`` (keep-alive), writing one metric point per
request.
"""

from __future__ import annotations

import argparse
import threading
import time

import requests

from benchmarks.server import LocalServer


def _run(url: str, key: str, clients: int, seconds: float) -> tuple[int, float]:
    """Drive ``clients`` threads for ``seconds``; return (requests done, elapsed)."""
    base = url + "/api/rest/v2/"
    headers = {"Authorization": key}
    exp_keys = [
        requests.post(
            base + "write/experiment/create",
            json={"workspaceName": "local", "projectName": "bench"},
            headers=headers,
            timeout=10,
        ).json()["experimentKey"]
        for _ in range(clients)
    ]
    counts = [0] * clients
    failures = [0] * clients
    stop = threading.Event()

    def work(idx: int) -> None:
        session = requests.Session()
        step = 0
        while not stop.is_set():
            resp = session.post(
                base + "write/experiment/metric",
                headers=headers,
                timeout=30,
                json={
                    "experimentKey": exp_keys[idx],
                    "metricName": "loss",
                    "metricValue": 1.0 / (step + 1),
                    "step": step,
                },
            )
            if resp.status_code == 200:
                counts[idx] += 1
            else:
                failures[idx] += 1
            step += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if any(failures):
        raise RuntimeError(f"{sum(failures)} failed writes")
    return sum(counts), elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each run")
    args = parser.parse_args(argv)
    rows = []
    with LocalServer() as srv:
        _run(srv.url, srv.api_key, 1, 0.3)  # warm-up
        for clients in (1, 8):
            done, elapsed = _run(srv.url, srv.api_key, clients, args.seconds)
            rows.append((clients, done, elapsed))
    base = rows[0][1] / rows[0][2]
    print("| clients | writes | seconds | writes/s | vs 1 client |")
    print("|---:|---:|---:|---:|---:|")
    for clients, done, elapsed in rows:
        rate = done / elapsed
        print(f"| {clients} | {done} | {elapsed:.2f} | {rate:.0f} | {rate / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
