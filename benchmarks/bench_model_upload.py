"""Model upload: throughput and client memory for a large model file.

Run: ``python -m benchmarks.bench_model_upload [--size-mb 500]``. Prints a Markdown table.

The local server runs in a SUBPROCESS (``python -m comet_callbacks.server``, upload limit
raised above the file size), so that its memory is metered apart from the client's (it streams
each upload to a temporary file; see ``bench_server_memory``). The client side is the real path:
``Experiment.log_model`` → sender → ``MultipartStream`` → HTTP, then ``flush()``.

Memory is the peak RSS growth over the RSS before the step, sampled every 5 ms by a psutil
thread, for the client process and (separately) the server process. Baseline, in the same
process on the same file: reading it in 1 MiB chunks (the floor: what any streaming reader
costs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from benchmarks.server import LocalServer

MiB = 1024 * 1024


class PeakRSS:
    """Samples a process's RSS in a thread; ``growth`` is the peak minus the start value."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.proc = psutil.Process(pid)
        self.interval = interval
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                rss = self.proc.memory_info().rss
            except psutil.Error:
                return
            self.peak = max(self.peak, rss)
            time.sleep(self.interval)

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = self.proc.memory_info().rss
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.start


def measure(fn: Callable[[], Any], server_pid: int | None = None) -> tuple[float, int, int | None]:
    """``(seconds, client RSS growth, server RSS growth)`` of one call of ``fn``."""
    server = PeakRSS(server_pid) if server_pid else None
    with PeakRSS(os.getpid()) as client:
        if server:
            server.__enter__()
        t0 = time.perf_counter()
        try:
            fn()
        finally:
            elapsed = time.perf_counter() - t0
            if server:
                server.__exit__()
    return elapsed, client.growth, server.growth if server else None


def make_file(path: Path, size: int) -> None:
    """``size`` bytes of incompressible data, written 1 MiB at a time."""
    with open(path, "wb") as fh:
        left = size
        while left > 0:
            n = min(left, MiB)
            fh.write(os.urandom(n))
            left -= n


def start_server_subprocess(data_dir: Path, max_upload: int) -> tuple[subprocess.Popen, str, str]:
    """``(process, url, key)`` of a local server (:class:`benchmarks.server.LocalServer`) with
    the upload limit raised; the caller terminates the process. Kept for ``bench_ui``."""
    srv = LocalServer(str(data_dir), ["--max-upload-bytes", str(max_upload)])
    return srv.proc, srv.url, srv.api_key


#: A discard sink: reads each request body in 1 MiB pieces and answers like upload-asset. It
#: isolates the client's own streaming throughput from the local server's parsing cost.
SINK = r"""
import http.server
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        left = int(self.headers["Content-Length"])
        while left:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk:
                break
            left -= len(chunk)
        body = b'{"msg":"Saved","assetId":"sink"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"""


def sink_upload(model: Path) -> Callable[[], Any]:
    """The client's upload call (same Call, same transport) against a discard sink."""
    from comet_callbacks.rest.call import FilePart
    from comet_callbacks.rest.client import RestClient
    from comet_callbacks.rest.endpoints import calls

    def run() -> None:
        proc = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline())
            call = calls.upload_asset(
                "0" * 32,
                FilePart(model.name, path=str(model)),
                type="model-element",
                grouping_name="big",
            )
            with RestClient(f"http://127.0.0.1:{port}", "key", upload_timeout=900) as client:
                client.send(call)
        finally:
            proc.kill()
            proc.wait()

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500, help="model file size (MiB)")
    args = parser.parse_args(argv)
    size = args.size_mb * MiB

    with tempfile.TemporaryDirectory(prefix="bench-model-") as tmp:
        tmpdir = Path(tmp)
        model = tmpdir / "model.bin"
        make_file(model, size)
        srv = LocalServer(str(tmpdir / "server"), ["--max-upload-bytes", str(size + 64 * MiB)])
        proc, url, key = srv.proc, srv.url, srv.api_key
        try:
            for name in list(os.environ):
                if name.startswith("COMET_"):
                    del os.environ[name]
            os.environ.update(
                COMET_URL_OVERRIDE=url,
                COMET_API_KEY=key,
                COMET_OFFLINE_DIRECTORY=str(tmpdir / "offline"),
            )
            import requests

            from comet_callbacks import Experiment

            rows: list[tuple[str, float, int, int | None]] = []

            def read_chunks() -> None:
                with open(model, "rb") as fh:
                    while fh.read(MiB):
                        pass

            t, c, _ = measure(read_chunks)
            rows.append(("baseline: read the file in 1 MiB chunks", t, c, None))
            t, c, _ = measure(sink_upload(model))
            rows.append(("client upload call to a discard sink (subprocess)", t, c, None))

            exp = Experiment(
                project_name="bench",
                auto_log_code=False,
                auto_log_git_metadata=False,
                auto_log_git_patch=False,
                auto_log_env_details=False,
                auto_log_env_cpu=False,
                auto_log_env_gpu=False,
                auto_log_output_logger=False,
                timeout_upload=900,
            )

            def upload() -> None:
                exp.log_model("big", model)
                if not exp.flush(timeout=900):
                    raise RuntimeError("the model upload did not finish")

            t, c, s = measure(upload, proc.pid)
            exp.end()
            rows.append(("Experiment.log_model + flush (streamed)", t, c, s))

            stored = requests.get(
                url + "/api/rest/v2/experiment/asset/list",
                params={"experimentKey": exp.key, "type": "model-element"},
                headers={"Authorization": key},
                timeout=30,
            ).json()["assets"]
            ok = len(stored) == 1 and stored[0]["fileSize"] == size
        finally:
            srv.stop()

    print(f"\nModel upload of a {args.size_mb} MiB file to the local server (subprocess)\n")
    print(
        "| step | time (s) | MiB/s | client peak RSS growth (MiB) | server peak RSS growth (MiB) |"
    )
    print("|---|---:|---:|---:|---:|")
    for label, t, c, s in rows:
        server = "–" if s is None else f"{s / MiB:.0f}"
        print(f"| {label} | {t:.2f} | {size / MiB / t:.0f} | {c / MiB:.1f} | {server} |")
    verdict = "stored size matches" if ok else "STORED ASSET MISSING OR WRONG SIZE"
    streamed = max(rows[1][2], rows[2][2]) / MiB
    print(
        f"\nServer check: {verdict}. Client memory {'flat' if streamed < 50 else 'NOT flat'}: "
        f"{streamed:.1f} MiB growth for a {args.size_mb} MiB file (target < 50 MiB). "
        "The server streams each upload to a temporary file (see its column); it runs in a "
        "separate process here so the two figures stay apart."
    )
    return 0 if ok and streamed < 50 else 1


if __name__ == "__main__":
    raise SystemExit(main())
