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
from quiet import quiet

import comet_callbacks
from comet_callbacks.server.embedded import ServerHandle
from comet_callbacks.server.reader import Reader, ReadError

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
    exp.log_remote_model("remote-net", "s3://bucket/models/net.pt", metadata={"size": 5})
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
    _, script = _asset(
        reader, key, type="source_code", fileName=str(git_repo / "sdk_script.py").lstrip("/")
    )  # the server stores a relative display name
    assert script.decode() == FULL_RUN
    snippet, data = _asset(reader, key, type="source_code", fileName="snippet.py")
    assert data == b"print('x')\n"
    assert json.loads(snippet["metadata"]) == {"source_code_type": "manual"}

    # an asset, an image, a model and its registration
    assert _asset(reader, key, fileName="notes.txt")[1] == b"asset bytes"
    image, data = _asset(reader, key, type="image")
    assert (image["fileName"], image["image"], data) == ("pic", True, PNG)
    model, data = _asset(reader, key, type="model-element", remote=False)
    assert (model["fileName"], data) == ("weights.bin", WEIGHTS)
    models = [m for m in reader.models(key) if m["modelName"] == "tiny"]
    assert sorted(m["modelName"] for m in reader.models(key)) == ["remote-net", "tiny"]
    [remote] = [a for a in reader.assets(key) if a["remote"]]
    assert (remote["fileName"], remote["link"], remote["type"]) == (
        "net.pt",
        "s3://bucket/models/net.pt",
        "model-element",
    )
    assert json.loads(remote["metadata"])["size"] == 5  # the SDK adds its own sync notes
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


HERE = Path(__file__).resolve().parent

LIGHTNING = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import comet_ml  # first, as the SDK asks
    from lightning.pytorch.loggers import CometLogger
    from tiny import TinyModel, loader, pl

    logger = CometLogger(project="sdk-lightning", log_env_gpu=False, log_git_metadata=False,
                         log_git_patch=False, display_summary_level=0)
    trainer = pl.Trainer(max_epochs=2, logger=logger, accelerator="cpu", log_every_n_steps=1,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(TinyModel(lr=0.05), loader(), loader(seed=1))
    key = logger.experiment.get_key()
    logger.experiment.end()
    print("RESULT" + json.dumps({"key": key, "steps": trainer.global_step}))
    """
)


def test_lightning_builtin_comet_logger_logs_to_the_local_server(
    comet_server: ServerHandle, reader: Reader, tmp_path: Path
) -> None:
    env = sdk_env(comet_server, tmp_path / "home")
    got = run_sdk(LIGHTNING, env, tmp_path, str(HERE / "lightning_scripts"))
    key, steps = got["key"], got["steps"]
    assert steps == 8  # 2 epochs of 4 batches
    assert reader.metadata(key)["projectName"] == "sdk-lightning"
    train = reader.metrics(key, "train_loss_step")
    assert [p["step"] for p in train] == list(range(steps))
    assert all(float(p["metricValue"]) > 0 for p in train)
    val = reader.metrics(key, "val_loss")
    assert [p["step"] for p in val] == [3, 7]  # once per epoch, at its last step
    params = reader.parameters(key)
    assert params["lr"] == "0.05" and params["hidden"] == "4"
    assert reader.metadata(key)["running"] is False


TRANSFORMERS = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import comet_ml  # first, as the SDK asks
    from transformers import Trainer
    import hf_tiny

    args = hf_tiny.args(sys.argv[2], report_to="comet_ml", run_name="hf-sdk")
    trainer = Trainer(model=hf_tiny.model(), args=args, train_dataset=hf_tiny.Data(24))
    trainer.train()
    exp = comet_ml.get_running_experiment()
    key = exp.get_key()
    exp.end()
    print("RESULT" + json.dumps({"key": key}))
    """
)


def test_transformers_builtin_comet_callback_logs_to_the_local_server(
    comet_server: ServerHandle, reader: Reader, tmp_path: Path
) -> None:
    env = sdk_env(
        comet_server,
        tmp_path / "home",
        COMET_PROJECT_NAME="sdk-hf",
        COMET_LOG_ENV_GPU="false",
        COMET_AUTO_LOG_GIT_METADATA="false",
        COMET_AUTO_LOG_GIT_PATCH="false",
    )
    key = run_sdk(
        TRANSFORMERS, env, tmp_path, str(HERE / "transformers_scripts"), str(tmp_path / "out")
    )["key"]
    meta = reader.metadata(key)
    assert (meta["projectName"], meta["experimentName"]) == ("sdk-hf", "hf-sdk")
    loss = reader.metrics(key, "train/loss")  # transformers' rewrite_logs names it so
    assert [p["step"] for p in loss] == [1, 2, 3, 4, 5, 6]
    assert all(float(p["metricValue"]) > 0 for p in loss)
    # one epoch of 6 steps: the SDK sends the fractional epochs 1/6 ... 6/6, kept whole
    assert [p["epoch"] for p in loss] == [0, 0, 0, 0, 0, 1]
    params = reader.parameters(key)
    assert params["args|max_steps"] == "6"
    assert params["config|hidden_size"] == "32"


OFFLINE = textwrap.dedent(
    """
    import json, sys
    import comet_ml

    exp = comet_ml.OfflineExperiment(
        project_name="sdk-offline", offline_directory=sys.argv[1], auto_metric_logging=False,
        log_env_gpu=False, log_git_metadata=False, log_git_patch=False, display_summary_level=0)
    exp.set_name("offline-run")
    exp.log_parameter("lr", 0.5)
    for step in range(3):
        exp.log_metric("loss", 3 - step, step=step)
    print("offline hello")
    exp.log_asset_data(b"offline bytes", name="off.txt")
    exp.add_tag("off")
    exp.end()
    print("RESULT" + json.dumps({"key": exp.get_key()}))
    """
)


def test_sdk_comet_upload_of_an_offline_archive(
    comet_server: ServerHandle, reader: Reader, tmp_path: Path
) -> None:
    env = sdk_env(comet_server, tmp_path / "home")
    archive_dir = tmp_path / "archives"
    key = run_sdk(OFFLINE, env, tmp_path, str(archive_dir))["key"]
    archive = archive_dir / f"{key}.zip"
    assert archive.is_file()
    with pytest.raises(ReadError) as nothing_yet:
        reader.metadata(key)
    assert nothing_yet.value.status == 404
    comet = Path(sys.executable).parent / "comet"
    proc = subprocess.run(
        [str(comet), "upload", str(archive)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    meta = reader.metadata(key)
    assert (meta["experimentName"], meta["projectName"]) == ("offline-run", "sdk-offline")
    assert meta["running"] is False and meta["endTimeMillis"] >= meta["startTimeMillis"]
    loss = sorted((p["step"], p["metricValue"]) for p in reader.metrics(key, "loss"))
    assert loss == [(0, "3"), (1, "2"), (2, "1")]
    assert reader.parameters(key)["lr"] == "0.5"
    assert reader.tags(key) == ["off"]
    assert "offline hello\n" in reader.output(key)
    assert _asset(reader, key, fileName="off.txt")[1] == b"offline bytes"


def test_our_client_still_registers_models_with_the_probe_at_3_5_42(
    comet_env: ServerHandle, reader: Reader, tmp_path: Path
) -> None:
    # The probe makes the official SDK register through item/create (the full run above);
    # this project's client uses the documented registry-model endpoints, still served.
    assert reader.version() == "3.5.42"
    weights = tmp_path / "weights.bin"
    weights.write_bytes(WEIGHTS)
    exp = comet_callbacks.Experiment(project_name="ours", **quiet())
    try:
        exp.log_model("mine", weights)
        first = exp.register_model("mine", version="1.0.0")
        second = exp.register_model("mine")
    finally:
        exp.end()
    assert first is not None and second is not None
    assert (first.version, second.version) == ("1.0.0", "1.0.1")
    details = reader.registry_details(comet_env.workspace, "mine")
    assert [v["version"] for v in details["versions"]] == ["1.0.0", "1.0.1"]
    assert details["versions"][0]["experimentModel"]["experimentKey"] == exp.key
