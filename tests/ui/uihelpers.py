"""Helpers of the web UI tests: screenshots, login through a link, a real logged run."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from comet_callbacks.server.embedded import ServerHandle
from comet_callbacks.server.store import series_ids

SHOTS = Path(__file__).resolve().parents[2] / "build" / "ui-screenshots"


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot of ``page`` as ``build/ui-screenshots/<name>.png``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page: Any, server: ServerHandle, key: str | None = None) -> None:
    """Sign ``page``'s context in through a one-time login link."""
    page.goto(server.login_url(key))
    page.wait_for_url(server.url + "/")


def log_run(
    name: str,
    steps: int,
    lr: float,
    tags: list[str],
    project: str = "mnist",
    api_key: str | None = None,
    workspace: str | None = None,
    end: bool = True,
    output: bool = True,
) -> Any:
    """A real run through the client: metrics, parameters, output, an asset, a model."""
    from comet_callbacks import Experiment

    exp = Experiment(
        project_name=project,
        experiment_name=name,
        tags=tags,
        api_key=api_key,
        workspace=workspace,
        auto_log_output_logger=output,
    )
    exp.log_parameters({"lr": lr, "batch_size": 32, "optimizer": {"name": "adam"}})
    for s in range(steps):
        exp.log_metric("train/loss", 2.0 * math.exp(-s / (10 + 40 * lr)) + 0.01, step=s)
        exp.log_metric("train/acc", 1 - math.exp(-s / 12), step=s)
        if s % 5 == 0:
            exp.log_metric("val/loss", 2.2 * math.exp(-s / 15) + 0.05, step=s)
            exp.log_metric("val/acc", 0.95 - 0.9 * math.exp(-s / 14), step=s)
    exp.log_metric("accuracy", 0.9 + lr, step=steps)
    exp.log_other("dataset", "digits")
    if output:
        print(f"training {name}: done")
        print(f"warning: {name} is a tiny run", file=sys.stderr)
    exp.log_asset(b"some notes\n" * 20, file_name="notes.txt")
    if end:
        exp.end()
    return exp


def seed_metric(server: ServerHandle, key: str, name: str, values: list[float]) -> None:
    """Store ``values`` (steps 0..n-1) as metric ``name`` of experiment ``key`` in one
    transaction of the server's own store: tens of thousands of points in a blink, where
    one HTTP request per point would take minutes on a loaded machine."""
    import time

    ts = int(time.time() * 1000)
    with server.store.tx() as tx:
        series = series_ids(tx.conn, key, (name,))[name]
        tx.conn.executemany(
            "INSERT INTO metrics (exp_key, name, value, value_text, ts, step, epoch, context, "
            "system, series) VALUES (?,?,?,?,?,?,NULL,NULL,0,?)",
            ((key, name, v, repr(v), ts + i, i, series) for i, v in enumerate(values)),
        )
