"""The main job (`bash scripts/main.sh` → `python -m comet_callbacks.demo`) runs as written."""

from __future__ import annotations

import os
import subprocess
import sys


def test_demo_trains_registers_and_reports(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "comet_callbacks.demo",
            "--max-epochs",
            "2",
            "--data-dir",
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "status:     success (running: False, crashed: False)" in out
    assert "model registry:    demo-regressor versions ['1.0.0']" in out
    assert "train_loss" in out and "val_loss" in out
    assert "lr = 0.05" in out
    assert (tmp_path / "comet.sqlite").exists()  # the embedded server kept its data there
