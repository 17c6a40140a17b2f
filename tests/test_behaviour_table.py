"""The README's behaviour table, cell by cell: the same situation gives the same outcome with
Lightning, the Hugging Face Trainer and Keras (one tiny real training each)."""

from __future__ import annotations

import importlib.util
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import torch  # noqa: E402

from comet_callbacks import exits  # noqa: E402

HERE = Path(__file__).parent
FRAMEWORKS = ["lightning", "transformers", "keras"]


class Boom(RuntimeError):
    """The user's own training error."""


def _load(name: str, path: Path) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cannot_save(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("this model cannot be saved")


def _lightning(tmp_path: Path, fail: BaseException | None, unsaveable: bool) -> Any:
    from comet_callbacks.integrations.lightning import CometCallback, pl

    tiny = _load("tiny", HERE / "lightning_scripts" / "tiny.py")

    class Raise(pl.Callback):
        def on_train_batch_end(self, *args: Any) -> None:
            assert fail is not None
            raise fail

    model = tiny.TinyModel()
    if unsaveable:
        model.state_dict = _cannot_save  # type: ignore[method-assign]
    cb = CometCallback()
    trainer = pl.Trainer(
        callbacks=[cb, *([Raise()] if fail else [])],
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=str(tmp_path / "run"),
    )
    trainer.fit(model, tiny.loader(16))
    return cb


def _transformers(tmp_path: Path, fail: BaseException | None, unsaveable: bool) -> Any:
    from comet_callbacks.integrations.transformers import CometCallback
    from transformers import Trainer, TrainerCallback

    tiny = _load("hf_tiny", HERE / "transformers_scripts" / "hf_tiny.py")

    class Raise(TrainerCallback):
        def on_step_end(self, *args: Any, **kwargs: Any) -> None:
            assert fail is not None
            raise fail

    model = tiny.model()
    if unsaveable:
        model.save_pretrained = _cannot_save
    cb = CometCallback()
    trainer = Trainer(
        model=model,
        args=tiny.args(str(tmp_path / "out"), max_steps=2),
        train_dataset=tiny.Data(8),
        callbacks=[cb, *([Raise()] if fail else [])],
    )
    trainer.train()
    return cb


def _keras(tmp_path: Path, fail: BaseException | None, unsaveable: bool) -> Any:
    import keras
    import numpy as np
    from comet_callbacks.integrations.keras import CometCallback

    class Raise(keras.callbacks.Callback):
        def on_epoch_end(self, *args: Any, **kwargs: Any) -> None:
            assert fail is not None
            raise fail

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    if unsaveable:
        model.save = _cannot_save
    x = np.ones((16, 4), dtype="float32")
    cb = CometCallback()
    model.fit(
        x, x[:, :1], epochs=1, batch_size=8, verbose=0, callbacks=[cb, *([Raise()] if fail else [])]
    )
    return cb


RUN = {"lightning": _lightning, "transformers": _transformers, "keras": _keras}


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "comet_callbacks" and r.levelno >= logging.WARNING
    ]


def _experiments(reader: Any) -> list[dict[str, Any]]:
    return [
        e for p in reader.projects("local") for e in reader.experiments("local", p["projectName"])
    ]


def _offline_runs(comet_env: Any) -> list[str]:
    folder = os.environ["COMET_OFFLINE_DIRECTORY"]
    return [n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n))]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_refused_key_trains_and_keeps_the_run_offline(
    framework: str, comet_env: Any, reader: Any, tmp_path: Path, caplog: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("COMET_API_KEY", "not-the-right-key")
    RUN[framework](tmp_path, None, False)
    assert _experiments(reader) == []
    assert len(_offline_runs(comet_env)) == 1
    warned = [m for m in _warnings(caplog) if "OFFLINE" in m]
    assert len(warned) == 1 and "refused" in warned[0]
    assert "not-the-right-key" not in caplog.text


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_unreachable_server_trains_and_keeps_the_run_offline(
    framework: str, comet_env: Any, tmp_path: Path, caplog: Any, monkeypatch: Any
) -> None:
    monkeypatch.setenv("COMET_URL_OVERRIDE", "http://127.0.0.1:9")  # nothing listens there
    RUN[framework](tmp_path, None, False)
    assert len(_offline_runs(comet_env)) == 1
    assert len([m for m in _warnings(caplog) if "cannot reach" in m]) == 1


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_unwritable_offline_folder_trains_and_warns(
    framework: str, comet_env: Any, tmp_path: Path, caplog: Any, monkeypatch: Any
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(blocker / "runs"))
    RUN[framework](tmp_path, None, False)  # returns: training was not broken
    assert any(str(blocker) in m for m in _warnings(caplog))


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_model_that_cannot_be_saved_still_ends_the_run(
    framework: str, comet_env: Any, reader: Any, tmp_path: Path, caplog: Any
) -> None:
    RUN[framework](tmp_path, None, True)
    (exp,) = _experiments(reader)
    key = exp["experimentKey"]
    assert reader.others(key)["status"] == "success"
    assert [a for a in reader.assets(key) if a["type"] == "model-element"] == []
    assert any("cannot be saved" in m for m in _warnings(caplog))


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize(
    "error, status", [(Boom("user bug"), "failed"), (KeyboardInterrupt(), "interrupted")]
)
def test_training_error_reaches_the_caller_and_ends_the_run(
    framework: str,
    error: BaseException,
    status: str,
    comet_env: Any,
    reader: Any,
    tmp_path: Path,
    monkeypatch: Any,
) -> None:
    interrupted = isinstance(error, KeyboardInterrupt)
    if framework == "lightning" and interrupted:
        # Lightning's own behaviour: Ctrl-C becomes a graceful shutdown, then exit(1)
        previous = signal.getsignal(signal.SIGINT)
        with pytest.raises(SystemExit):
            RUN[framework](tmp_path, error, False)
        signal.signal(signal.SIGINT, previous)
    else:
        with pytest.raises(type(error)) as raised:
            RUN[framework](tmp_path, error, False)
        assert raised.value is error  # unchanged
    if framework != "lightning":
        # Keras and the HF Trainer have no exception hook: the uncaught exception ends the run
        # through the core's excepthook, as it does when a script dies of it.
        monkeypatch.setattr(exits, "_crashed", False)
        sys.excepthook(type(error), error, raised.tb)
    (exp,) = _experiments(reader)
    assert reader.others(exp["experimentKey"])["status"] == status
