"""Hugging Face Trainer integration: real tiny training on CPU against the local server.

Every test trains a 2-layer BERT built from a config on data made here, then compares what the
SERVER stored with what the Trainer recorded (``trainer.state.log_history``, saved files).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import torch  # noqa: E402
from comet_callbacks.integrations._toolkit import parse_log_model as _parse_log_model  # noqa: E402
from comet_callbacks.integrations.transformers import (  # noqa: E402
    KEY_FILE,
    CometCallback,
    rewrite_logs,
)

HERE = Path(__file__).parent
SCRIPTS = HERE / "transformers_scripts"
ROOT = HERE.parent
PROJECT = "hf"

_spec = importlib.util.spec_from_file_location("hf_tiny", SCRIPTS / "hf_tiny.py")
assert _spec is not None and _spec.loader is not None
tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(tiny)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _trainer(out: Path, cb: CometCallback, **kw: Any) -> Any:
    from transformers import Trainer

    model = kw.pop("model", None) or tiny.model()
    return Trainer(
        model=model,
        args=tiny.args(str(out), **kw),
        train_dataset=tiny.Data(32),
        eval_dataset=tiny.Data(8, seed=2),
        processing_class=tiny.tokenizer(),
        callbacks=[cb],
    )


def _only_experiment(reader: Any) -> str:
    exps = reader.experiments("local", PROJECT)
    assert len(exps) == 1, [e["experimentKey"] for e in exps]
    return exps[0]["experimentKey"]


def _series(reader: Any, key: str, name: str) -> list[tuple[int, float, int | None]]:
    """(step, value, epoch) points of one metric, by step (arrival order is not step order)."""
    points = [(p["step"], float(p["metricValue"]), p["epoch"]) for p in reader.metrics(key, name)]
    return sorted(points, key=lambda p: p[0])


def _assert_logged(reader: Any, key: str, entries: list[dict[str, Any]]) -> None:
    """Every value of every ``log_history`` entry is on the server, at its step, under the
    rewritten name, with the completed epochs in the point's ``epoch`` field."""
    cache: dict[str, list[tuple[int, float, int | None]]] = {}
    for entry in entries:
        step = entry["step"]
        epoch = int(entry["epoch"]) if "epoch" in entry else None
        logs = {k: v for k, v in entry.items() if k != "step"}
        for name, value in rewrite_logs(logs).items():
            points = cache.setdefault(name, _series(reader, key, name))
            assert (step, float(value), epoch) in points, (name, step, value, points)


def _assert_no_hook_failure(caplog: pytest.LogCaptureFixture) -> None:
    failures = [r.getMessage() for r in caplog.records if "CometCallback." in r.getMessage()]
    assert failures == []


# ---------------------------------------------------------------------- units


def test_rewrite_logs_and_log_model_values() -> None:
    assert rewrite_logs({"loss": 1, "eval_loss": 2, "test_accuracy": 3, "epoch": 0.5}) == {
        "train/loss": 1,
        "eval/loss": 2,
        "test/accuracy": 3,
        "train/epoch": 0.5,
    }
    assert [_parse_log_model(v) for v in ("false", "TRUE", "best", "all", "last", False)] == [
        False,
        True,
        "best",
        "all",
        "last",
        False,
    ]
    with pytest.raises(ValueError, match="log_model"):
        _parse_log_model("sometimes")


def test_import_is_lazy() -> None:
    """Importing the integration loads ``TrainerCallback`` only, not the Trainer."""
    code = (
        "import sys, comet_callbacks.integrations.transformers as m\n"
        "print(sorted(n for n in ('transformers.trainer', 'transformers.modeling_utils') if n in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------- end to end


class _AdapterConfig:
    """Stand-in for a ``peft.PeftConfig`` (peft is not a dependency): has ``to_dict()``."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)


def test_parameters_metrics_and_evaluate_after_train(
    comet_env: Any, reader: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = tiny.model()
    model.bert.embeddings.requires_grad_(False)  # so that trainable < total
    # what a PEFT model carries: adapter name -> config with to_dict()
    model.peft_config = {"default": _AdapterConfig(r=4, target_modules=["query", "value"])}
    cb = CometCallback(project_name=PROJECT, log_model=False)
    trainer = _trainer(
        tmp_path / "out",
        cb,
        model=model,
        eval_strategy="steps",
        eval_steps=3,
        learning_rate=3e-4,
        run_name="tiny-run",
    )
    trainer.train()
    key = _only_experiment(reader)
    assert cb.experiment_key == key
    assert reader.metadata(key)["experimentName"] == "tiny-run"  # the Trainer's run name
    assert cb.experiment is None  # ended at on_train_end
    meta = reader.metadata(key)
    assert meta["running"] is False
    assert reader.others(key)["status"] == "success"

    # parameters: TrainingArguments, model config, parameter counts
    params = reader.parameters(key)
    assert float(params["args|learning_rate"]) == 3e-4
    assert params["args|max_steps"] == "6"
    assert params["config|hidden_size"] == "32"
    assert params["config|num_hidden_layers"] == "2"
    assert params["args|hub_model_id"] == "None"  # unset options are shown as unset
    n = sum(p.numel() for p in trainer.model.parameters())
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert 0 < trainable < n
    assert params["model|num_parameters"] == str(n)
    assert params["model|num_trainable_parameters"] == str(trainable)
    assert params["peft|default|r"] == "4"
    assert json.loads(params["peft|default|target_modules"]) == ["query", "value"]

    # metrics: every log_history value at its step; fractional epoch as its own metric
    history = list(trainer.state.log_history)
    assert any("eval_loss" in e for e in history) and any("loss" in e for e in history)
    _assert_logged(reader, key, history)
    assert [s for s, _, _ in _series(reader, key, "train/loss")] == [1, 2, 3, 4, 5, 6]
    epochs = {v for _, v, _ in _series(reader, key, "train/epoch")}
    assert 0.125 in epochs  # 8 batches per epoch: step 1 is epoch 0.125, stored as epoch 0

    # evaluate() and predict() after train() continue the ended experiment and end it again
    ev = trainer.evaluate()
    pred = trainer.predict(tiny.Data(8, seed=3))
    assert _only_experiment(reader) == key
    _assert_logged(reader, key, trainer.state.log_history[len(history) :])
    assert (6, ev["eval_loss"], 0) in _series(reader, key, "eval/loss")
    assert (6, pred.metrics["test_loss"], 0) in _series(reader, key, "test/loss")
    assert len(_series(reader, key, "eval/loss")) == 3
    assert reader.metadata(key)["running"] is False
    assert reader.others(key)["status"] == "success"
    assert reader.models(key) == []  # log_model=False
    _assert_no_hook_failure(caplog)


def _model_files(reader: Any, key: str) -> dict[str, bytes]:
    """``fileName`` → bytes of every model file the server stored for the experiment."""
    return {
        a["fileName"]: reader.get_asset(key, a["assetId"])
        for a in reader.assets(key, type="model-element")
    }


def _local_files(folder: Path, prefix: str) -> dict[str, bytes]:
    return {
        f"{prefix}/{p.relative_to(folder).as_posix()}": p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_checkpoints_final_model_and_registry_from_env(
    comet_env: Any,
    reader: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """COMET_LOG_MODEL=all uploads each checkpoint (even one rotated away before its upload)
    and the final model with its tokenizer, registered under COMET_MODEL_REGISTRY_NAME."""
    monkeypatch.setenv("COMET_LOG_MODEL", "all")
    monkeypatch.setenv("COMET_MODEL_REGISTRY_NAME", "tiny-bert")
    out = tmp_path / "out"
    cb = CometCallback(project_name=PROJECT)
    trainer = _trainer(out, cb, save_strategy="steps", save_steps=3, save_total_limit=1)
    trainer.train()
    key = _only_experiment(reader)
    assert reader.others(key)["status"] == "success"

    name = "BertForSequenceClassification"
    assert sorted(m["modelName"] for m in reader.models(key)) == sorted(
        ["checkpoint-3", "checkpoint-6", name]
    )
    stored = _model_files(reader, key)
    # checkpoint-3 was deleted by save_total_limit=1; its upload still holds every file
    assert not (out / "checkpoint-3").exists()
    ckpt3 = {f for f in stored if f.startswith("checkpoint-3/")}
    assert {"checkpoint-3/model.safetensors", f"checkpoint-3/{KEY_FILE}"} <= ckpt3
    assert json.loads(stored[f"checkpoint-3/{KEY_FILE}"]) == {"experiment_key": key}
    # checkpoint-6: byte for byte the folder the Trainer saved
    ckpt6 = {f: b for f, b in stored.items() if f.startswith("checkpoint-6/")}
    assert ckpt6 == _local_files(out / "checkpoint-6", "checkpoint-6")
    # the final model: what trainer.save_model writes, minus the pickled TrainingArguments
    trainer.save_model(str(tmp_path / "final"))
    expected = _local_files(tmp_path / "final", name)
    expected.pop(f"{name}/training_args.bin")
    assert {f"{name}/model.safetensors", f"{name}/tokenizer.json"} <= set(expected)
    assert {f: b for f, b in stored.items() if f.startswith(f"{name}/")} == expected

    # registered from this experiment's final model
    assert [m["modelName"] for m in reader.registry_models("local")] == ["tiny-bert"]
    versions = reader.registry_details("local", "tiny-bert")["versions"]
    assert [v["version"] for v in versions] == ["1.0.0"]
    assert versions[0]["experimentModel"]["experimentKey"] == key
    assert versions[0]["experimentModel"]["experimentModelName"] == name

    # the key is kept with the checkpoint (for resume) and staging folders are gone
    assert json.loads((out / "checkpoint-6" / KEY_FILE).read_text()) == {"experiment_key": key}
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["stateful_callbacks"]["CometCallback"]["attributes"] == {
        "_saved_experiment_key": key
    }
    assert [p.name for p in out.iterdir() if p.name.startswith(".comet")] == []
    _assert_no_hook_failure(caplog)


def test_best_checkpoint_model(comet_env: Any, reader: Any, tmp_path: Path) -> None:
    """log_model="best" without load_best_model_at_end uploads the best checkpoint's model
    files (not its optimizer state) and nothing at each save."""
    out = tmp_path / "out"
    cb = CometCallback(project_name=PROJECT, log_model="best", model_name="best-bert")
    trainer = _trainer(
        out,
        cb,
        eval_strategy="steps",
        eval_steps=2,
        save_strategy="steps",
        save_steps=2,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        learning_rate=5e-3,
    )
    trainer.train()
    key = _only_experiment(reader)
    best = Path(trainer.state.best_model_checkpoint)
    assert [m["modelName"] for m in reader.models(key)] == ["best-bert"]
    expected = {
        f: b
        for f, b in _local_files(best, "best-bert").items()
        if f.rsplit("/", 1)[1]
        in ("model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json")
    }
    stored = _model_files(reader, key)
    assert len(expected) == 4 and stored.items() >= expected.items()
    assert not any("optimizer" in f or "rng_state" in f for f in stored)
    assert reader.registry_models("local") == []  # no registry name configured


def _failing_model(fail_at: int) -> Any:
    spec = importlib.util.spec_from_file_location("train_fails", SCRIPTS / "train_fails.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.failing_model(fail_at), mod.Boom


def test_crash_in_script_ends_experiment_failed(
    comet_env: Any, reader: Any, tmp_path: Path
) -> None:
    """An exception inside train() in a script: the experiment ends failed (the core's exit
    hook), the traceback and the exit code are Python's own."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "train_fails.py"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_TEST_PROJECT": PROJECT},
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback (most recent call last)" in proc.stderr
    assert proc.stderr.rstrip().splitlines()[-1] == "Boom: forward failed at call 3"
    key = _only_experiment(reader)
    others = reader.others(key)
    assert others["status"] == "failed"
    assert others["hasCrashed"] == "true"
    meta = reader.metadata(key)
    assert meta["running"] is False and meta["endTimeMillis"] is not None
    assert [s for s, _, _ in _series(reader, key, "train/loss")] == [1, 2]
    assert float(reader.parameters(key)["args|max_steps"]) == 6


def test_crash_in_process_is_ended_failed_by_next_train(
    comet_env: Any, reader: Any, tmp_path: Path
) -> None:
    """In a long-lived process (notebook) the crashed run's experiment is ended as failed when
    the callback's next train() begins; that one gets its own experiment."""
    model, boom = _failing_model(3)
    cb = CometCallback(project_name=PROJECT, log_model=False)
    trainer = _trainer(tmp_path / "out", cb, model=model, max_steps=4)
    with pytest.raises(boom):
        trainer.train()
    first = _only_experiment(reader)
    assert reader.metadata(first)["running"] is True  # nothing told us yet
    trainer.train()  # the model raises only once
    exps = {e["experimentKey"] for e in reader.experiments("local", PROJECT)}
    (second,) = exps - {first}
    assert reader.others(first)["status"] == "failed"
    assert reader.metadata(first)["running"] is False
    assert reader.others(second)["status"] == "success"
    assert [s for s, _, _ in _series(reader, second, "train/loss")] == [1, 2, 3, 4]


@pytest.mark.parametrize("restore_callbacks", [False, True])
def test_resume_continues_the_experiment(
    comet_env: Any, reader: Any, tmp_path: Path, restore_callbacks: bool
) -> None:
    """train(resume_from_checkpoint=...) in a new Trainer with a new callback (as in a new
    process) continues the experiment stored with the checkpoint, steps going on; also when
    the Trainer rebuilds the callback from its saved state."""
    out = tmp_path / "out"
    first = _trainer(
        out,
        CometCallback(project_name=PROJECT, log_model=False),
        max_steps=4,
        save_strategy="steps",
        save_steps=2,
    )
    first.train()
    key = _only_experiment(reader)
    assert [s for s, _, _ in _series(reader, key, "train/loss")] == [1, 2, 3, 4]

    second = _trainer(
        out,
        CometCallback(project_name=PROJECT, log_model=False),
        max_steps=6,
        save_strategy="steps",
        save_steps=2,
        restore_callback_states_from_checkpoint=restore_callbacks,
    )
    second.train(resume_from_checkpoint=str(out / "checkpoint-4"))
    assert _only_experiment(reader) == key
    resumed = [e for e in second.state.log_history if e["step"] > 4]
    assert resumed and all(e["step"] in (5, 6) for e in resumed)
    _assert_logged(reader, key, resumed)
    assert [s for s, _, _ in _series(reader, key, "train/loss")] == [1, 2, 3, 4, 5, 6]
    assert reader.others(key)["status"] == "success"
    assert reader.metadata(key)["running"] is False
    assert json.loads((out / "checkpoint-6" / KEY_FILE).read_text()) == {"experiment_key": key}


def _launcher(kind: str) -> list[str]:
    """The command that starts 2 CPU processes: torchrun, or accelerate's launcher."""
    if kind == "torchrun":
        return [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "2",
        ]
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = str(sock.getsockname()[1])
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",  # with no GPU: 2 CPU processes over torch.distributed (gloo)
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        port,
    ]


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_torchrun_two_processes_make_one_experiment(
    comet_env: Any, reader: Any, tmp_path: Path, launcher: str
) -> None:
    """torchrun --nproc_per_node 2 / accelerate launch (CPU, gloo): rank 0 creates, logs,
    uploads and ends the one experiment; rank 1 adds only its system metrics (context
    ``rank1``) when COMET_DISTRIBUTED_SYSTEM_METRICS is on."""
    out = tmp_path / "out"
    env = {
        **os.environ,
        "HF_TEST_PROJECT": PROJECT,
        "COMET_DISTRIBUTED_SYSTEM_METRICS": "true",
        "COMET_CPU_MONITOR_INTERVAL": "0.1",  # samples well within the short training
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [*_launcher(launcher), str(SCRIPTS / "train_ddp.py"), str(out)],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    key = _only_experiment(reader)
    assert ranks[0]["key"] == key
    assert ranks[1]["key"] is None  # rank 1 never created nor continued an experiment

    _assert_logged(reader, key, ranks[0]["log_history"])
    loss = reader.metrics(key, "train/loss")
    assert sorted(p["step"] for p in loss) == list(range(1, 9))  # once per step: none by rank 1
    assert {p["runContext"] for p in loss} == {None}
    assert [m["modelName"] for m in reader.models(key)] == ["BertForSequenceClassification"]
    files = [a["fileName"] for a in reader.assets(key, type="model-element")]
    assert len(files) == len(set(files))  # uploaded once
    assert reader.others(key)["status"] == "success"
    assert reader.metadata(key)["running"] is False
    # rank 1's own system metrics, under its context
    contexts = {p["runContext"] for p in reader.metrics(key, "sys.ram.used")}
    assert "rank1" in contexts


def test_offline_run_with_evaluate_uploads_as_one_experiment(
    comet_env: Any, reader: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline, train() + evaluate() stay in one run folder (the experiment is kept open after
    training), registry included; `comet-callbacks upload` then makes one experiment of it."""
    from comet_callbacks.upload import upload_paths

    offline = Path(os.environ["COMET_OFFLINE_DIRECTORY"])
    cb = CometCallback(project_name=PROJECT, mode="offline", registry_name="offline-bert")
    trainer = _trainer(tmp_path / "out", cb, max_steps=4, eval_strategy="steps", eval_steps=2)
    trainer.train()
    assert cb.experiment is not None and cb.experiment.mode == "offline"  # kept open
    trainer.evaluate()
    cb.experiment.end()  # what process exit does
    runs = [p for p in offline.iterdir() if p.is_dir()]
    assert len(runs) == 1
    assert PROJECT not in {p["projectName"] for p in reader.projects("local")}  # nothing sent

    (result,) = upload_paths([str(offline)], progress=False)
    assert not result.errors, result.errors
    key = _only_experiment(reader)
    _assert_logged(reader, key, trainer.state.log_history)
    assert len(_series(reader, key, "eval/loss")) == 3  # 2 during training, 1 after
    assert [m["modelName"] for m in reader.models(key)] == ["BertForSequenceClassification"]
    assert [m["modelName"] for m in reader.registry_models("local")] == ["offline-bert"]
    assert reader.others(key)["status"] == "success"


def test_quickstart_example(comet_env: Any, reader: Any, tmp_path: Path) -> None:
    temp = tmp_path / "tmpdir"  # the system temp folder, as the example sees it
    temp.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples" / "transformers_quickstart.py"),
            "--max-steps",
            "4",
            "--project",
            PROJECT,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(temp)},
        cwd=str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    key = _only_experiment(reader)
    assert f"experiment key {key}" in proc.stdout
    assert f"experiment is live at {comet_env.url}/local/{PROJECT}/{key}" in proc.stderr
    # nothing of ours (or the example's) is left; torch may keep its compile cache there
    assert [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")] == []
    assert [s for s, _, _ in _series(reader, key, "train/loss")] == [1, 2, 3, 4]
    assert len(_series(reader, key, "eval/loss")) == 5  # steps 1..4 and the final evaluate()
    assert reader.tags(key) == ["quickstart"]
    assert [m["modelName"] for m in reader.models(key)] == ["BertForSequenceClassification"]
    assert reader.others(key)["status"] == "success"


class _SaveFailed(RuntimeError):
    pass


def _broken_tokenizer() -> Any:
    tok = tiny.tokenizer()

    def save_pretrained(*args: Any, **kwargs: Any) -> None:
        raise _SaveFailed("disk full")

    tok.save_pretrained = save_pretrained
    return tok


def test_hook_failure_never_breaks_training_unless_strict(
    comet_env: Any, reader: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from transformers import Trainer

    def trainer(cb: CometCallback, out: str) -> Any:
        return Trainer(
            model=tiny.model(),
            args=tiny.args(str(tmp_path / out), max_steps=2),
            train_dataset=tiny.Data(16),
            processing_class=_broken_tokenizer(),
            callbacks=[cb],
        )

    t = trainer(CometCallback(project_name=PROJECT), "lenient")
    t.train()  # the failing tokenizer save is reported, not raised
    key = _only_experiment(reader)
    failures = [r.getMessage() for r in caplog.records if "CometCallback." in r.getMessage()]
    assert len(failures) == 1 and "on_train_end" in failures[0] and "disk full" in failures[0]
    assert reader.others(key)["status"] == "success"
    assert reader.metadata(key)["running"] is False
    assert [s for s, _, _ in _series(reader, key, "train/loss")] == [1, 2]

    strict = CometCallback(project_name=PROJECT, strict=True)
    with pytest.raises(_SaveFailed, match="disk full"):
        trainer(strict, "strict").train()
    assert strict.experiment is None  # ended all the same
    assert reader.others(strict.experiment_key)["status"] == "success"


def test_resume_from_checkpoint_saved_without_the_callback(
    comet_env: Any, reader: Any, tmp_path: Path
) -> None:
    """A checkpoint saved before Comet was added: resuming starts a new experiment, and the
    Trainer's next save does not trip over the callback state missing from the checkpoint."""
    from transformers import Trainer

    out = tmp_path / "out"
    kw = dict(save_strategy="steps", save_steps=2)
    Trainer(
        model=tiny.model(), args=tiny.args(str(out), max_steps=4, **kw), train_dataset=tiny.Data(32)
    ).train()
    trainer = _trainer(out, CometCallback(project_name=PROJECT, log_model=False), max_steps=6, **kw)
    trainer.train(resume_from_checkpoint=str(out / "checkpoint-4"))
    key = _only_experiment(reader)
    assert [s for s, _, _ in _series(reader, key, "train/loss")] == [5, 6]
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["stateful_callbacks"]["CometCallback"]["attributes"] == {
        "_saved_experiment_key": key
    }
