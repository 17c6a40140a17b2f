"""A running experiment's page follows the run; ``comet-callbacks server`` prints a login link."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit

import requests
from uihelpers import login, shot


def test_running_experiment_page_follows_the_run(ui_server, new_page) -> None:
    from comet_callbacks import Experiment

    exp = Experiment(project_name="live", experiment_name="still-training")
    try:
        for s in range(5):
            exp.log_metric("loss", 1.0 / (s + 1), step=s)
        assert exp.flush(10)
        page = new_page()
        login(page, ui_server)
        page.goto(f"{ui_server.url}/local/live/{exp.key}")
        assert page.locator(".title-row .badge").get_attribute("data-status") == "running"
        fig = page.locator('figure.chart[data-metric="loss"]')
        page.wait_for_function("el => el.dataset.points === '5'", arg=fig.element_handle())

        for s in range(5, 12):  # more points: the chart redraws in place
            exp.log_metric("loss", 1.0 / (s + 1), step=s)
        assert exp.flush(10)
        page.wait_for_function(
            "() => document.querySelector('figure.chart[data-metric=\"loss\"]')"
            ".dataset.points === '12'",
            timeout=15_000,
        )
        exp.log_metric("accuracy", 0.5, step=11)  # a new metric: its chart appears
        print("epoch 1 finished")
        assert exp.flush(10)
        page.wait_for_selector('figure.chart[data-metric="accuracy"]', timeout=15_000)
        shot(page, "experiment-running")
    finally:
        exp.end()
    # the end of the run shows on the page without a manual reload
    page.wait_for_selector('.title-row .badge[data-status="success"]', timeout=15_000)


def test_server_command_prints_a_login_link(tmp_path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "comet_callbacks.server",
            "--port",
            "0",
            "--data-dir",
            str(tmp_path / "data"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    timer = threading.Timer(60, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while len(lines) < 20 and "/login?token=" not in "".join(lines[-1:]):
            lines.append(proc.stdout.readline())
        out = "".join(lines)
        assert "export COMET_URL_OVERRIDE=" in out
        key = re.search(r"export COMET_API_KEY=(\S+)", out).group(1)
        link = re.search(r"^  (http://127\.0\.0\.1:\d+/login\?token=[\w-]+)$", out, re.M)
        assert link, out
        parts = urlsplit(link.group(1))
        root = f"{parts.scheme}://{parts.netloc}"
        token = parse_qs(parts.query)["token"][0]
        assert key not in link.group(1)  # the link carries a token, never the key
        deadline = time.monotonic() + 20
        s = requests.Session()
        while True:
            try:
                assert s.get(link.group(1), timeout=5).status_code == 200
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        home = s.post(root + "/login", data={"token": token}, headers={"Origin": root}, timeout=5)
        assert home.status_code == 200 and home.url == root + "/"
        assert 'data-workspace="local"' in home.text
        cookie = home.history[0].headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
    finally:
        timer.cancel()
        proc.terminate()
        proc.wait(timeout=20)
