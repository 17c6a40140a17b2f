"""Hugging Face Trainer integration: real tiny training on CPU against the local server.

Every test trains a 2-layer BERT built from a config on data made here, then compares what the
SERVER stored with what the Trainer recorded (``trainer.state.log_history``, saved files).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("transformers")
pytest.importorskip("accelerate")

import torch  # noqa: E402
from comet_callbacks.integrations.transformers import (  # noqa: E402
    CometCallback,
    _parse_log_model,
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
        True,
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


def test_parameters_metrics_and_evaluate_after_train(
    comet_env: Any, reader: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cb = CometCallback(project_name=PROJECT, log_model=False)
    trainer = _trainer(
        tmp_path / "out", cb, eval_strategy="steps", eval_steps=3, learning_rate=3e-4
    )
    trainer.train()
    key = _only_experiment(reader)
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
    assert params["model|num_parameters"] == str(n)
    assert params["model|num_trainable_parameters"] == str(n)

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
