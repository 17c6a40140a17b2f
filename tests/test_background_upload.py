"""End of run: `COMET_BACKGROUND_UPLOAD` hands the rest to a detached uploader; short runs
still get their start-up capture; `None` parameters stay visible."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

import comet_callbacks

CHILD = textwrap.dedent(
    """
    import time, comet_callbacks
    exp = comet_callbacks.Experiment(project_name="bg", auto_log_output_logger=False)
    for i in range(2000):
        exp.log_metric("x", i, step=i)
    t = time.monotonic()
    exp.end()
    print("END_WAIT", time.monotonic() - t)
    """
)


def test_background_upload_returns_quickly_and_delivers_everything_once(
    comet_env, reader, tmp_path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = dict(os.environ, COMET_BACKGROUND_UPLOAD="1")
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    end_wait = float(proc.stdout.split("END_WAIT")[1])
    assert end_wait < 5.0  # bounded by a 0.5 s hand-over, not by delivery
    [exp] = reader.experiments(comet_env.workspace, "bg")
    key = exp["experimentKey"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        points = reader.metrics(key, "x")
        if len(points) >= 2000 and not reader.metadata(key)["running"]:
            break
        time.sleep(0.5)
    steps = sorted(p["step"] for p in points)
    assert steps == list(range(2000))  # every point, exactly once
    assert reader.metadata(key)["running"] is False
    assert reader.others(key)["status"] == "success"
    # the uploader removes the run folder once everything is delivered
    deadline = time.monotonic() + 30
    offline = os.environ["COMET_OFFLINE_DIRECTORY"]
    while os.listdir(offline) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert os.listdir(offline) == []


def test_a_very_short_run_still_sends_its_start_up_capture(comet_env, reader) -> None:
    exp = comet_callbacks.Experiment(project_name="short", strict=True)
    exp.end()  # immediately: the capture thread is joined, nothing is reported as "after end"
    details = reader.system_details(exp.key)
    assert details["pythonVersion"]
    assert any(p.startswith("psutil==") for p in details["installedPackages"])


def test_none_parameters_are_logged_as_text(comet_env, reader) -> None:
    with comet_callbacks.Experiment(project_name="none", strict=True) as exp:
        exp.log_parameters({"a": None, "opt": {"eps": None, "lr": 0.1}})
    params = reader.parameters(exp.key)
    assert params["a"] == "None"
    assert params["opt|eps"] == "None"
    assert params["opt|lr"] == "0.1"


def test_offline_continuation_of_an_existing_key_uploads_into_that_experiment(
    comet_env, reader, tmp_path
) -> None:
    from comet_callbacks.upload import upload_paths

    with comet_callbacks.Experiment(project_name="cont") as online:
        online.log_metric("m", 1.0, step=1)
    offline_dir = str(tmp_path / "off")
    with comet_callbacks.Experiment(
        experiment_key=online.key, mode="offline", offline_directory=offline_dir
    ) as cont:
        cont.log_metric("m", 2.0, step=2)
    [result] = upload_paths([offline_dir], progress=False)
    assert result.complete and result.experiment_key == online.key
    assert len(reader.experiments(comet_env.workspace, "cont")) == 1
    assert sorted(p["step"] for p in reader.metrics(online.key, "m")) == [1, 2]
