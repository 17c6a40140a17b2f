"""GPU system metrics, end to end on a real GPU: ``python -m benchmarks.gpu_check``.

Starts the local server, runs GPU work for a few seconds inside an experiment with short
monitor intervals, then reads back what the server stored: the static GPU info from the
system details and the ``sys.gpu.<i>.*`` metric series. Exits non-zero if anything is
missing. Needs a CUDA GPU, torch and nvidia-ml-py; prints a skip message otherwise.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args(argv)
    try:
        import pynvml  # noqa: F401
        import torch
    except ImportError as exc:
        print(f"skip: {exc}")
        return 0
    if not torch.cuda.is_available():
        print("skip: no CUDA GPU")
        return 0

    from benchmarks.server import LocalServer
    from comet_callbacks import Experiment
    from comet_callbacks.server.reader import Reader

    tmp = tempfile.mkdtemp()
    with LocalServer(os.path.join(tmp, "server")) as srv:
        exp = Experiment(
            api_key=srv.api_key,
            url_override=srv.url,
            project_name="gpu-check",
            offline_directory=os.path.join(tmp, "off"),
            cpu_monitor_interval=0.5,
            gpu_monitor_interval=0.5,
        )
        x = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        deadline = time.time() + args.seconds
        step = 0
        while time.time() < deadline:
            y = x @ x
            torch.cuda.synchronize()
            step += 1
            exp.log_metric("checksum", float(y[0, 0].float()), step=step)
        exp.end()
        rd = Reader(srv.url, srv.api_key)
        details = rd.system_details(exp.key)
        gpus = details.get("gpuStaticInfoList") or []
        names = details.get("systemMetricNames") or []
        print(f"GPU static info: {gpus}")
        print(f"system metric names: {sorted(names)}")
        rows = []
        for suffix in ("gpu_utilization", "used_memory", "free_memory", "total_memory"):
            series = rd.metrics(exp.key, f"sys.gpu.0.{suffix}")
            values = [float(p["metricValue"]) for p in series]
            rows.append((suffix, len(values), max(values) if values else None))
        print("| metric | samples | max |\n|---|---:|---:|")
        for name, n, mx in rows:
            print(f"| sys.gpu.0.{name} | {n} | {mx} |")
        ok = bool(gpus) and all(n >= 2 for _, n, _ in rows) and rows[0][2] and rows[0][2] > 0
        print(f"torch: {torch.__version__}, device: {torch.cuda.get_device_name(0)}, steps: {step}")
        print("GPU CHECK: " + ("OK" if ok else "FAILED"))
        return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
