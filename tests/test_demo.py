"""The main job (`bash scripts/main.sh` → `python -m comet_callbacks.demo`) runs as written:
it trains, reports, keeps its data in ./comet-demo (and nothing else beside it), and with
``--serve`` stays up with a login link that opens the run's web page."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from urllib.parse import parse_qs, urlsplit

import requests


def test_demo_trains_registers_reports_and_serves(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    env["OMP_NUM_THREADS"] = "1"
    env["TMPDIR"] = str(tmp_path / "tmp")  # what the demo would leave in the temp folder
    os.makedirs(env["TMPDIR"])
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "comet_callbacks.demo", "--max-epochs", "2", "--serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=work,
    )
    timer = threading.Timer(300, proc.kill)
    timer.start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Serving until Ctrl-C"):
                break
        out = "".join(lines)
        assert "Serving until Ctrl-C" in out, out[-3000:] + proc.stderr.read()[-3000:]
        assert "status:     success (running: False, crashed: False)" in out
        assert "model registry:    demo-regressor versions ['1.0.0']" in out
        assert "train_loss" in out and "val_loss" in out
        assert "lr = 0.05" in out
        link = re.search(r"^  (http://127\.0\.0\.1:\d+/login\?token=\S+)$", out, re.M).group(1)
        exp_link = re.search(r"^link:\s+(\S+)$", out, re.M).group(1)

        # the printed login link signs a browser in and lands on the run's page
        parts = urlsplit(link)
        query = parse_qs(parts.query)
        assert query["next"] == [urlsplit(exp_link).path]
        root = f"{parts.scheme}://{parts.netloc}"
        s = requests.Session()
        assert s.get(link, timeout=10).status_code == 200
        page = s.post(
            root + "/login",
            data={"token": query["token"][0], "next": query["next"][0]},
            headers={"Origin": root},
            timeout=10,
        )
        assert page.status_code == 200 and page.url == exp_link
        assert "demo-regressor" in page.text and 'data-status="success"' in page.text
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=60)
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    assert "stopped." in rest
    # all the demo wrote is in ./comet-demo: no lightning_logs/, no comet-demo-* temp folders
    assert sorted(os.listdir(work)) == ["comet-demo"]
    assert (work / "comet-demo" / "comet.sqlite").exists()
    assert [n for n in os.listdir(env["TMPDIR"]) if "comet" in n] == []


def test_demo_says_how_to_open_the_web_ui() -> None:
    from comet_callbacks import demo

    assert "--serve" in (demo.__doc__ or "")
    help_text = subprocess.run(
        [sys.executable, "-m", "comet_callbacks.demo", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "--serve" in help_text and "./comet-demo" in help_text
