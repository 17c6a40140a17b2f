"""Server memory under concurrent large uploads, with a wrong key and with the right one.

Run: ``python -m benchmarks.bench_server_memory [--size-mb 150] [--clients 3] [--quick]``.
Prints a Markdown table; exits 1 when a server's peak RSS growth reaches 100 MiB.

The local server runs in a subprocess (:class:`benchmarks.server.LocalServer`, the
benchmarks' one launcher); its RSS is sampled every 5 ms by psutil. Each
client thread streams one multipart upload of ``--size-mb`` MiB over a raw HTTP/1.1
connection with a declared ``Content-Length`` (so the client itself holds one 1 MiB
chunk), all clients at once. The baseline, in the same run, is the data in flight
(clients × size): the growth is reported as a share of it. A server that buffers bodies
grows by a multiple of the data in flight (the issue measured 1.39 GB for three 150 MB
uploads with a wrong key); a streaming one stays flat whatever the sizes.
"""

from __future__ import annotations

import argparse
import http.client
import os
import tempfile
import threading
import time
from urllib.parse import urlsplit

import requests

from benchmarks.bench_model_upload import PeakRSS
from benchmarks.server import LocalServer

MiB = 1024 * 1024
LIMIT_MIB = 100
BOUNDARY = "benchboundary7f3a"


def upload(url: str, key: str, exp_key: str, size: int, name: str) -> tuple[int, int]:
    """Stream one ``size``-byte multipart upload; return ``(status, bytes sent)``. A server
    that refuses early may close the connection mid-body: that is counted, not raised."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
    sent = 0
    try:
        conn.putrequest(
            "POST", f"/api/rest/v2/write/experiment/upload-asset?experimentKey={exp_key}"
        )
        conn.putheader("Authorization", key)
        conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
        conn.putheader("Content-Length", str(len(head) + size + len(tail)))
        conn.endheaders()
        chunk = os.urandom(MiB)
        try:
            conn.send(head)
            left = size
            while left > 0:
                piece = chunk[: min(left, MiB)]
                conn.send(piece)
                sent += len(piece)
                left -= len(piece)
            conn.send(tail)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the end of the body
        try:
            return conn.getresponse().status, sent
        except (ConnectionResetError, http.client.RemoteDisconnected):
            return -1, sent
    finally:
        conn.close()


def run_wave(
    url: str, key: str, exp_key: str, size: int, clients: int, server_pid: int, label: str
) -> tuple[int, list[tuple[int, int]], float]:
    """All clients at once; return (server peak RSS growth, [(status, sent)], seconds)."""
    results: list[tuple[int, int]] = [(0, 0)] * clients

    def one(i: int) -> None:
        results[i] = upload(url, key, exp_key, size, f"{label}-{i}.bin")

    threads = [threading.Thread(target=one, args=(i,)) for i in range(clients)]
    with PeakRSS(server_pid) as rss:
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
    return rss.growth, results, elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_server_memory")
    parser.add_argument("--size-mb", type=int, default=150, help="size of each upload (MiB)")
    parser.add_argument("--clients", type=int, default=3, help="concurrent uploads per wave")
    parser.add_argument("--quick", action="store_true", help="20 MiB uploads: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.size_mb = 20
    size = args.size_mb * MiB
    in_flight = size * args.clients
    rows: list[tuple[str, int, str, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-server-memory-") as tmp:
        server = LocalServer(tmp, ["--max-upload-bytes", str(size + 16 * MiB)])
        url, key, pid = server.url, server.api_key, server.pid
        try:
            exp_key = requests.post(
                url + "/api/rest/v2/write/experiment/create",
                json={"workspaceName": "local", "projectName": "memory"},
                headers={"Authorization": key},
                timeout=30,
            ).json()["experimentKey"]
            upload(url, key, exp_key, MiB, "warm-up.bin")  # import/parse paths warmed once
            for label, auth in (("wrong key", "not-the-key"), ("right key", key)):
                growth, results, secs = run_wave(
                    url, auth, exp_key, size, args.clients, pid, label.replace(" ", "-")
                )
                statuses = sorted({s for s, _ in results})
                sent = sum(b for _, b in results)
                note = f"status {statuses}, {sent / MiB:.0f} MiB of the bodies sent"
                rows.append((label, growth, note, secs))
            stored = requests.get(
                url + "/api/rest/v2/experiment/asset/list",
                params={"experimentKey": exp_key},
                headers={"Authorization": key},
                timeout=30,
            ).json()["assets"]
            kept = sorted(a["fileSize"] for a in stored if a["fileName"].startswith("right-key"))
            stored_ok = kept == [size] * args.clients
            wrong_ok = all(a["fileName"].startswith(("right-key", "warm-up")) for a in stored)
        finally:
            server.stop()

    print(
        f"\nServer memory: {args.clients} concurrent uploads of {args.size_mb} MiB "
        f"({in_flight / MiB:.0f} MiB in flight), local server in a subprocess\n"
    )
    print("| uploads | server peak RSS growth (MiB) | growth / data in flight | time (s) | notes |")
    print("|---|---:|---:|---:|---|")
    for label, growth, note, secs in rows:
        print(
            f"| {args.clients} × {args.size_mb} MiB, {label} | {growth / MiB:.1f} | "
            f"{growth / in_flight:.3f} | {secs:.1f} | {note} |"
        )
    worst = max(g for _, g, _, _ in rows) / MiB
    ok = worst < LIMIT_MIB and stored_ok and wrong_ok
    print(
        f"\nStored: {'every right-key upload, exact size' if stored_ok else 'MISSING OR WRONG SIZE'}; "
        f"wrong-key uploads {'stored nothing' if wrong_ok else 'WERE STORED'}. "
        f"Peak growth {worst:.1f} MiB (target < {LIMIT_MIB} MiB): {'OK' if ok else 'FAILED'}."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
