"""The official SDK's ``comet_ml.Experiment`` logs to the local server unchanged (issue #21).

Each SDK run is a subprocess (importing ``comet_ml`` installs import hooks we keep out of
the test process) pointed at the server with ``COMET_URL_OVERRIDE=<url>/clientlib/`` and the
server's key; what it logged is read back through the REST read API, value by value.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

import pytest

from comet_callbacks.server.embedded import ServerHandle
from comet_callbacks.server.reader import Reader

pytest.importorskip("comet_ml", reason="comet-ml is part of the test extra")

#: A 2x2 red PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000002000000020802000000fdd49a73"
    "0000000f49444154789c63f8cfc0f01f84190000ebf40bf5a30a70b20000000049454e44ae426082"
)
WEIGHTS = b"\x01\x02\x03 tiny weights"

FULL_RUN = textwrap.dedent(
    """
    import json, sys
    import comet_ml

    exp = comet_ml.Experiment(
        project_name="sdk-exp",
        auto_metric_logging=False,
        auto_param_logging=False,
        auto_histogram_weight_logging=False,
        auto_histogram_gradient_logging=False,
        auto_histogram_activation_logging=False,
        log_env_gpu=False,
        display_summary_level=0,
    )
    exp.set_name("full-run")
    exp.log_parameters({"lr": 0.01, "layers": [8, 4], "opt": "adam"})
    for epoch in range(2):
        for step in range(epoch * 3, epoch * 3 + 3):
            exp.log_metric("loss", 1.0 / (step + 1), step=step, epoch=epoch)
        exp.log_metric("val_acc", 0.5 + epoch / 10, step=epoch * 3 + 2, epoch=epoch)
    print("hello stdout")
    print("hello stderr", file=sys.stderr)
    exp.log_code(code="print('x')\\n", code_name="snippet.py")
    exp.log_asset_data(b"asset bytes", name="notes.txt")
    exp.log_image("img.png", name="pic")
    exp.log_model("tiny", "weights.bin")
    exp.register_model("tiny", version="1.2.3", description="a tiny model")
    exp.add_tags(["a", "b"])
    exp.log_other("note", "x")
    exp.end()
    print("RESULT" + json.dumps({"key": exp.get_key()}))
    """
)

CONTINUE = textwrap.dedent(
    """
    import json, sys
    import comet_ml

    exp = comet_ml.ExistingExperiment(
        previous_experiment=sys.argv[1],
        auto_metric_logging=False,
        log_env_gpu=False,
        log_env_details=False,
        log_git_metadata=False,
        log_git_patch=False,
        log_code=False,
        display_summary_level=0,
    )
    exp.log_metric("loss", 0.1, step=6, epoch=2)
    exp.log_parameter("resumed", True)
    print("continued")
    exp.add_tag("c")
    exp.end()
    print("RESULT" + json.dumps({"key": exp.get_key()}))
    """
)


def sdk_env(server: ServerHandle, home: Path, **extra: str) -> dict[str, str]:
    """The environment of an SDK process: this server, its key, nothing of the machine's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMET_")}
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        COMET_API_KEY=server.api_key,
        COMET_URL_OVERRIDE=server.url + "/clientlib/",
        COMET_LOGGING_CONSOLE="ERROR",
        COMET_OFFLINE_DIRECTORY=str(home / "offline"),
        HOME=str(home),  # no ~/.comet.config of the machine
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def run_sdk(
    script: str, env: dict[str, str], cwd: Path, *args: str, timeout: float = 240
) -> dict[str, Any]:
    """Run ``script`` with the SDK; return the JSON it printed after ``RESULT``."""
    path = cwd / "sdk_script.py"
    path.write_text(script)
    proc = subprocess.run(
        [sys.executable, str(path), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "COMET ERROR" not in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-4000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT")]
    assert lines, (proc.stdout + proc.stderr)[-4000:]
    return json.loads(lines[-1][len("RESULT") :])


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def git_repo(tmp_path: Path) -> Path:
    """A git repository with one commit and an uncommitted change (for metadata and patch)."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "Tess Ter")
    _git(repo, "config", "user.email", "tess@example.com")
    _git(repo, "remote", "add", "origin", "https://example.com/tess/repo.git")
    (repo / "cfg.txt").write_text("lr = 1\n")
    _git(repo, "add", "cfg.txt")
    _git(repo, "commit", "-q", "-m", "first")
    (repo / "cfg.txt").write_text("lr = 2\n")
    (repo / "img.png").write_bytes(PNG)
    (repo / "weights.bin").write_bytes(WEIGHTS)
    return repo


def _asset(reader: Reader, key: str, **match: Any) -> tuple[dict[str, Any], bytes]:
    found = [a for a in reader.assets(key) if all(a[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, reader.assets(key))
    return found[0], reader.get_asset(key, found[0]["assetId"])


def test_official_experiment_full_run_then_existing_experiment_continues_it(
    comet_server: ServerHandle, reader: Reader, git_repo: Path, tmp_path: Path
) -> None:
    env = sdk_env(comet_server, tmp_path / "home")
    key = run_sdk(FULL_RUN, env, git_repo)["key"]
    ws = comet_server.workspace

    meta = reader.metadata(key)
    assert (meta["experimentName"], meta["projectName"], meta["workspaceName"]) == (
        "full-run",
        "sdk-exp",
        ws,
    )
    assert meta["running"] is False and meta["endTimeMillis"] >= meta["startTimeMillis"]
    assert meta["fileName"] == "sdk_script.py"
    assert [e["experimentKey"] for e in reader.experiments(ws, "sdk-exp")] == [key]

    # metrics over steps and epochs, in logging order
    loss = reader.metrics(key, "loss")
    assert [(p["step"], p["epoch"], p["metricValue"]) for p in loss] == [
        (0, 0, "1"),
        (1, 0, "0.5"),
        (2, 0, "0.3333333333333333"),
        (3, 1, "0.25"),
        (4, 1, "0.2"),
        (5, 1, "0.16666666666666666"),
    ]
    acc = reader.metrics(key, "val_acc")
    assert [(p["step"], p["epoch"], p["metricValue"]) for p in acc] == [
        (2, 0, "0.5"),
        (5, 1, "0.6"),
    ]

    params = reader.parameters(key)
    assert (params["lr"], params["layers"], params["opt"]) == ("0.01", "[8,4]", "adam")
    assert reader.others(key)["note"] == "x"
    assert reader.tags(key) == ["a", "b"]

    out = reader.output(key)
    assert "hello stdout\n" in out and "hello stderr\n" in out
    assert out.index("hello stdout") < out.index("hello stderr")

    # code: the calling script, and log_code's snippet
    # the SDK names the script by its absolute path; the server keeps a safe relative name
    script_name = str(git_repo / "sdk_script.py").lstrip("/")
    _, script = _asset(reader, key, type="source_code", fileName=script_name)
    assert script.decode() == FULL_RUN
    snippet, data = _asset(reader, key, type="source_code", fileName="snippet.py")
    assert data == b"print('x')\n"
    assert json.loads(snippet["metadata"]) == {"source_code_type": "manual"}

    # an asset, an image, a model and its registration
    assert _asset(reader, key, fileName="notes.txt")[1] == b"asset bytes"
    image, data = _asset(reader, key, type="image")
    assert (image["fileName"], image["image"], data) == ("pic", True, PNG)
    model, data = _asset(reader, key, type="model-element")
    assert (model["fileName"], data) == ("weights.bin", WEIGHTS)
    models = reader.models(key)
    assert [m["modelName"] for m in models] == ["tiny"]
    details = reader.registry_details(ws, "tiny")
    assert details["description"] == "a tiny model"
    assert [v["version"] for v in details["versions"]] == ["1.2.3"]
    assert details["versions"][0]["experimentModel"] == {
        "experimentModelId": models[0]["experimentModelId"],
        "experimentModelName": "tiny",
        "experimentKey": key,
    }

    # git metadata and patch
    head = _git(git_repo, "rev-parse", "HEAD")
    assert reader.git_metadata(key) == {
        "user": "Tess Ter",
        "root": head,  # the first commit
        "branch": "refs/heads/main",
        "parent": head,
        "origin": "https://example.com/tess/repo.git",
    }
    with zipfile.ZipFile(io.BytesIO(reader.git_patch(key) or b"")) as zf:
        patch = zf.read("git_diff.patch").decode()
    assert "-lr = 1" in patch and "+lr = 2" in patch

    # system details and system metrics
    details = reader.system_details(key)
    assert details["hostname"] and isinstance(details["pid"], int)
    assert details["pythonVersion"] == ".".join(map(str, sys.version_info[:3]))
    assert any(p.startswith("comet_ml==") for p in details["installedPackages"])
    assert "sys.ram.total" in details["systemMetricNames"]
    assert details["totalRam"] and details["totalRam"] > 0

    # ExistingExperiment continues the same run
    assert run_sdk(CONTINUE, env, git_repo, key)["key"] == key
    loss = reader.metrics(key, "loss")
    assert [(p["step"], p["epoch"], p["metricValue"]) for p in loss][-1] == (6, 2, "0.1")
    assert len(loss) == 7
    assert reader.parameters(key)["resumed"] == "true"
    assert reader.tags(key) == ["a", "b", "c"]
    out = reader.output(key)
    assert out.index("hello stderr") < out.index("continued\n")  # offsets carry on
    meta = reader.metadata(key)
    assert meta["running"] is False and meta["endTimeMillis"] is not None
