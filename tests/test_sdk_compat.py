"""The official `comet_ml` SDK's REST client works against the local server (issue #3).

`comet_ml.API` / `APIExperiment`, pointed at the server with `COMET_URL_OVERRIDE`, reads back
what comet-callbacks logged, and writes what we then read back. The SDK runs in a
subprocess: importing it installs import hooks we keep out of the test process.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

import comet_callbacks

pytest.importorskip("comet_ml", reason="comet-ml is part of the test extra")

READ_AND_WRITE = textwrap.dedent(
    """
    import json, sys
    import comet_ml
    from comet_ml.api import API, APIExperiment

    workspace, project, key = sys.argv[1:4]
    api = API(cache=False)
    exp = api.get_experiment(workspace, project, key)
    loss = exp.get_metrics("loss")
    out = {
        "name": exp.get_name(),
        "loss_steps": sorted(m["step"] for m in loss),
        "loss_values": sorted(float(m["metricValue"]) for m in loss),
        "params": {p["name"]: p["valueCurrent"] for p in exp.get_parameters_summary()},
        "tags": exp.get_tags(),
        "assets": sorted(a["fileName"] for a in exp.get_asset_list()),
        "projects": api.get_projects(workspace),
        "experiments": [e.key for e in api.get_experiments(workspace, project)],
    }
    asset_id = [a for a in exp.get_asset_list() if a["fileName"] == "notes.txt"][0]["assetId"]
    out["asset_bytes"] = exp.get_asset(asset_id, return_type="binary").decode()
    # write through the SDK's REST client too
    new = APIExperiment(workspace=workspace, project_name="sdk-written")
    new.log_metric("acc", 0.75, step=3)
    new.log_parameter("batch", 32)
    new.add_tag("from-sdk")
    # two calls: each numbers its lines from offset 0 (the second one's line must not be lost)
    new.log_output("line one\\nline two\\n", context="train")
    new.log_output("an error\\n", stderr=True)
    out["written_key"] = new.key
    print("RESULT" + json.dumps(out))
    """
)


def test_official_sdk_reads_our_run_and_writes_through_the_server(
    comet_env, reader, tmp_path
) -> None:
    with comet_callbacks.Experiment(
        project_name="sdk", experiment_name="sdk-compat", tags=["ours"]
    ) as exp:
        exp.log_parameters({"lr": 0.01, "opt": {"name": "adam"}})
        for step in range(5):
            exp.log_metric("loss", 1.0 / (step + 1), step=step)
        exp.log_asset(b"hello sdk", file_name="notes.txt")
    script = tmp_path / "sdk_client.py"
    script.write_text(READ_AND_WRITE)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    env.update(
        COMET_API_KEY=comet_env.api_key,
        COMET_URL_OVERRIDE=comet_env.url + "/clientlib/",
        COMET_DISABLE_AUTO_LOGGING="1",
        COMET_LOGGING_CONSOLE="ERROR",
        HOME=str(tmp_path),  # no ~/.comet.config of the machine
    )
    proc = subprocess.run(
        [sys.executable, str(script), comet_env.workspace, "sdk", exp.key],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")][-1]
    got = json.loads(line[len("RESULT") :])
    assert got["name"] == "sdk-compat"
    assert got["loss_steps"] == [0, 1, 2, 3, 4]
    assert got["loss_values"] == sorted(1.0 / (s + 1) for s in range(5))
    assert got["params"]["lr"] == "0.01" and got["params"]["opt|name"] == "adam"
    assert got["tags"] == ["ours"]
    assert got["assets"] == ["notes.txt"]
    assert got["asset_bytes"] == "hello sdk"
    assert "sdk" in got["projects"]
    assert got["experiments"] == [exp.key]
    written = got["written_key"]
    assert [p["metricValue"] for p in reader.metrics(written, "acc")] == ["0.75"]
    assert reader.parameters(written)["batch"] == "32"
    assert reader.tags(written) == ["from-sdk"]
    # read order: offset, then arrival
    assert reader.output(written) == "line one\nan error\nline two\n"
    with sqlite3.connect(comet_env.db_path) as conn:
        rows = conn.execute(
            "SELECT text, stderr, context FROM output WHERE exp_key=? ORDER BY seq", (written,)
        ).fetchall()
    assert rows == [("line one\n", 0, "train"), ("line two\n", 0, "train"), ("an error\n", 1, None)]
