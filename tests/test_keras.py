"""Keras 3 integration: real tiny ``fit()`` runs logged to the local server, compared with
Keras' own ``History``, the model and the optimizer (issue #9)."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from comet_callbacks.integrations import keras as comet_keras  # noqa: E402
from comet_callbacks.integrations.keras import CometCallback, autolog  # noqa: E402

SCRIPT = Path(__file__).parent / "keras_scripts" / "fit_script.py"
WS = "local"


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


@pytest.fixture
def no_autolog() -> Any:
    """Whatever a test does, ``keras.Model.fit`` is restored afterwards."""
    yield
    autolog(disable=True)


def _data(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 4)).astype("float32")
    return x, x.sum(axis=1, keepdims=True)


def _model(lr: float = 0.01) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)]
    )
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse", metrics=["mae"])
    return model


def _series(reader: Any, key: str, name: str) -> list[tuple[int, int | None, float]]:
    """(step, epoch, value) of a metric on the server, by step."""
    rows = reader.metrics(key, name)
    return sorted((r["step"], r["epoch"], float(r["metricValue"])) for r in rows)


def _keys(reader: Any) -> list[str]:
    """Keys of the experiments in the default project (none while it does not exist)."""
    if not any(p.get("projectName") == "general" for p in reader.projects(WS)):
        return []
    return [e["experimentKey"] for e in reader.experiments(WS, "general")]


def _only_experiment(reader: Any) -> str:
    keys = _keys(reader)
    assert len(keys) == 1, keys
    return keys[0]


# ---------------------------------------------------------------------- fit + evaluate


def _no_warnings(caplog: Any) -> None:
    """Nothing was rejected by the server or failed in a hook."""
    bad = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # core: the start-up capture thread may still be logging when a tiny run has already
    # ended; that is reported as "log_* calls after end()" and is not this integration's
    bad = [m for m in bad if "calls after end()" not in m]
    assert bad == []


def test_fit_logs_parameters_metrics_graph_model_and_registry(
    comet_env: Any, reader: Any, tmp_path: Path, caplog: Any
) -> None:
    x, y = _data()
    model = _model()
    cb = CometCallback(registry_name="keras-reg")
    history = model.fit(
        x, y, epochs=3, batch_size=16, validation_split=0.25, callbacks=[cb], verbose=0
    )
    exp = cb.experiment
    assert exp is not None and exp.ended, "the experiment ends with training"
    key = exp.key
    assert _only_experiment(reader) == key

    # metrics: every epoch value of History, at step = optimizer iterations, epoch = index
    steps_per_epoch = 3  # 48 training samples / 16
    assert int(model.optimizer.iterations) == 3 * steps_per_epoch
    for name in ("loss", "mae", "val_loss", "val_mae"):
        series = _series(reader, key, name)
        assert [s for s, _, _ in series] == [3, 6, 9], name
        assert [e for _, e, _ in series] == history.epoch == [0, 1, 2]
        assert [v for _, _, v in series] == pytest.approx(history.history[name], rel=1e-6)
    assert reader.metrics(key, "batch_loss") == [], "no batch logging unless asked"

    # parameters
    params = reader.parameters(key)
    assert params["epochs"] == "3"
    assert params["steps_per_epoch"] == str(steps_per_epoch)
    assert params["optimizer"] == "Adam"
    assert float(params["learning_rate"]) == pytest.approx(0.01)
    assert float(params["optimizer_config|learning_rate"]) == pytest.approx(0.01)
    assert float(params["optimizer_config|beta_1"]) == pytest.approx(0.9)
    assert params["loss"] == "mse"
    assert json.loads(params["metrics"]) == ["mae"]
    assert params["steps_per_execution"] == "1"
    assert params["total_params"] == str(model.count_params()) == "49"
    assert params["trainable_params"] == "49"
    assert reader.others(key)["keras_backend"] == "torch"

    # graph and summary
    assert json.loads(reader.graph(key)) == json.loads(model.to_json())
    summaries = [a for a in reader.assets(key) if a["fileName"] == "model_summary.txt"]
    assert len(summaries) == 1
    summary = reader.get_asset(key, summaries[0]["assetId"]).decode()
    # the model's own summary (layer names carry a process-wide counter: compare with it)
    last_dense = model.layers[-1].name
    assert f"{last_dense} (Dense)" in summary and "Trainable params: 49" in summary

    # the model: logged, registered, loads and predicts like the trained one
    assert [m["modelName"] for m in reader.models(key)] == ["keras-model"]
    registry = {m["modelName"]: m for m in reader.registry_models(WS)}
    assert registry["keras-reg"]["latestVersion"] == "1.0.0"
    files = [a for a in reader.assets(key, type="model-element")]
    assert [a["fileName"] for a in files] == ["keras-model.keras"]
    path = tmp_path / "downloaded.keras"
    path.write_bytes(reader.get_asset(key, files[0]["assetId"]))
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))

    others = reader.others(key)
    assert others["status"] == "success" and "hasCrashed" not in others

    # evaluate() afterwards continues the same experiment, as eval_* at the same step
    result = model.evaluate(x, y, callbacks=[cb], verbose=0, return_dict=True)
    assert cb.experiment.key == key and cb.experiment.ended
    assert _only_experiment(reader) == key
    evaluated = _series(reader, key, "eval_loss")
    assert evaluated == [(9, None, pytest.approx(result["loss"], rel=1e-6))]
    assert _series(reader, key, "eval_mae")[0][2] == pytest.approx(result["mae"], rel=1e-6)
    assert reader.others(key)["status"] == "success"
    assert len(reader.metrics(key, "loss")) == 3, "validation inside fit is not eval_*"
    _no_warnings(caplog)


def test_offline_run_stays_open_for_evaluate_and_uploads_as_one_experiment(
    comet_env: Any, reader: Any, tmp_path: Path
) -> None:
    from comet_callbacks.upload import upload_run

    x, y = _data(32)
    model = _model()
    cb = CometCallback(mode="offline")
    history = model.fit(x, y, epochs=2, batch_size=16, callbacks=[cb], verbose=0)
    exp = cb.experiment
    assert exp.mode == "offline" and not exp.ended, "offline: open until exit or end()"
    result = model.evaluate(x, y, callbacks=[cb], verbose=0, return_dict=True)
    assert cb.experiment is exp
    cb.end()
    assert exp.ended
    assert [p for p in Path(exp.offline_path).rglob("*.keras")], "the model is in the run"
    assert _keys(reader) == [], "nothing online yet"

    uploaded = upload_run(exp.offline_path)
    key = _only_experiment(reader)
    assert uploaded.experiment_key == key
    assert [v for _, _, v in _series(reader, key, "loss")] == pytest.approx(
        history.history["loss"], rel=1e-6
    )
    assert _series(reader, key, "eval_loss") == [(4, None, pytest.approx(result["loss"]))]
    assert [m["modelName"] for m in reader.models(key)] == ["keras-model"]
    assert reader.others(key)["status"] == "success"


def test_a_bug_in_a_hook_never_breaks_training_unless_strict(
    comet_env: Any, reader: Any, monkeypatch: Any, caplog: Any
) -> None:
    def broken(self: Any) -> dict[str, Any]:
        raise KeyError("integration bug")

    monkeypatch.setattr(CometCallback, "_parameters", broken)
    x, y = _data(32)
    cb = CometCallback(log_model=False)
    _model().fit(x, y, epochs=2, batch_size=16, callbacks=[cb], verbose=0)
    key = cb.experiment.key
    assert [s for s, _, _ in _series(reader, key, "loss")] == [2, 4], "the rest still logged"
    assert reader.others(key)["status"] == "success"
    reports = [r for r in caplog.records if "on_train_begin failed" in r.getMessage()]
    assert len(reports) == 1 and "integration bug" in reports[0].getMessage()

    strict = CometCallback(strict=True)
    with pytest.raises(KeyError, match="integration bug"):
        _model().fit(x, y, epochs=1, callbacks=[strict], verbose=0)
    strict.end("failed")
    assert strict.experiment.ended


def test_an_experiment_passed_in_is_logged_to_but_not_ended(comet_env: Any, reader: Any) -> None:
    from comet_callbacks import Experiment

    x, y = _data(32)
    model = _model()
    with Experiment(experiment_name="mine") as exp:
        cb = CometCallback(exp, log_model=False)
        model.fit(x, y, epochs=1, batch_size=16, callbacks=[cb], verbose=0)
        assert cb.experiment is exp and not exp.ended
        model.evaluate(x, y, callbacks=[cb], verbose=0)
        assert not exp.ended
        exp.log_metric("after", 1.0)
    assert [s for s, _, _ in _series(reader, exp.key, "eval_loss")] == [2]
    assert len(reader.metrics(exp.key, "after")) == 1
    assert _keys(reader) == [exp.key]


def _sources(server: Any, key: str) -> dict[str, str | None]:
    """Each parameter's stored batch-item ``source`` (the read API does not return it)."""
    import sqlite3

    with sqlite3.connect(server.db_path) as conn:
        rows = conn.execute("SELECT name, source FROM params WHERE exp_key=?", (key,))
        return dict(rows.fetchall())


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_fit_parameters_arrive_auto_logged_and_a_users_manual(
    comet_env: Any, reader: Any, mode: str
) -> None:
    """The parameters the callback logs by itself are stored with source ``auto-logged``; the
    user's own ``log_parameter`` with ``manual``: live, and replayed by ``upload``."""
    from comet_callbacks import Experiment
    from comet_callbacks.upload import upload_run

    x, y = _data(32)
    model = _model()
    with Experiment(mode=mode) as exp:
        exp.log_parameter("note", "mine")
        cb = CometCallback(exp, log_model=False)
        model.fit(x, y, epochs=1, batch_size=16, callbacks=[cb], verbose=0)
        exp.log_parameters({"after": {"fit": 1}})
    key = exp.key if mode == "online" else upload_run(exp.offline_path).experiment_key
    sources = _sources(comet_env, key)
    assert set(reader.parameters(key)) == set(sources)
    assert sources.pop("note") == sources.pop("after|fit") == "manual"
    assert {"epochs", "optimizer"} <= set(sources)
    assert set(sources.values()) == {"auto-logged"}


def test_batch_hooks_exist_only_when_batch_logging_is_on() -> None:
    from keras.src.utils.python_utils import is_default  # what CallbackList checks

    quiet, batched = CometCallback(), CometCallback(log_batch_every=5)
    assert CometCallback.async_safe is True
    assert is_default(quiet.on_train_batch_end) and is_default(quiet.on_batch_end)
    assert is_default(quiet.on_test_batch_end) and is_default(quiet.on_predict_batch_end)
    assert not is_default(batched.on_train_batch_end)
    assert is_default(type(batched).on_train_batch_end), "never overridden on the class"
    # Keras keeps dispatching batch hooks asynchronously with either callback
    for cb in (quiet, batched):
        assert keras.callbacks.CallbackList([cb])._async_train is True
    with pytest.raises(ValueError, match="log_batch_every"):
        CometCallback(log_batch_every=0)


def test_only_rank_zero_logs(comet_env: Any, reader: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
    x, y = _data(32)
    cb = CometCallback()
    _model().fit(x, y, epochs=1, batch_size=16, callbacks=[cb], verbose=0)
    assert cb.experiment is None
    assert _keys(reader) == []


def test_subclassed_model_without_get_config_still_ends_the_experiment(
    comet_env: Any, reader: Any, caplog: Any
) -> None:
    """Keras refuses to save a subclassed model built with constructor arguments and no
    ``get_config()`` (as in Keras' own saving tests): training returns, the failure is
    reported once, and the experiment is ended with everything else delivered."""

    class Subclassed(keras.Model):
        def __init__(self, units: int) -> None:
            super().__init__()
            self.dense = keras.layers.Dense(units)

        def call(self, x: Any) -> Any:
            return self.dense(x)

    x, y = _data(32)
    model = Subclassed(1)
    model.compile(optimizer="sgd", loss="mse")
    cb = CometCallback()
    history = model.fit(x, y, epochs=2, batch_size=16, callbacks=[cb], verbose=0)
    assert cb.experiment.ended
    key = cb.experiment.key
    assert reader.others(key)["status"] == "success"
    assert reader.metadata(key)["running"] is False
    assert [v for _, _, v in _series(reader, key, "loss")] == pytest.approx(history.history["loss"])
    assert reader.assets(key, type="model-element") == []
    reports = [r.getMessage() for r in caplog.records if "on_train_end failed" in r.getMessage()]
    assert len(reports) == 1 and "get_config" in reports[0]


def test_non_zero_rank_joins_as_secondary_for_system_metrics(
    comet_env: Any, reader: Any, monkeypatch: Any
) -> None:
    from comet_callbacks import Experiment

    with Experiment(experiment_name="rank0") as rank0:  # what global rank 0 created
        monkeypatch.setenv("KERAS_DISTRIBUTION_PROCESS_ID", "1")
        monkeypatch.setenv("COMET_EXPERIMENT_KEY", rank0.key)  # the key rank 0 shared
        monkeypatch.setenv("COMET_DISTRIBUTED_SYSTEM_METRICS", "1")
        monkeypatch.setenv("COMET_CPU_MONITOR_INTERVAL", "0.05")
        x, y = _data(32)
        cb = CometCallback()
        seen: list[Any] = []

        class Look(keras.callbacks.Callback):
            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                seen.append(cb._secondary)
                time.sleep(0.3)  # long enough a training for a few system samples

        _model().fit(x, y, epochs=1, batch_size=16, callbacks=[cb, Look()], verbose=0)
        assert cb.experiment is None  # logs nothing itself
        (secondary,) = seen
        assert secondary is not None and secondary.key == rank0.key and secondary.ended
    contexts = {p["runContext"] for p in reader.metrics(rank0.key, "sys.ram.used")}
    assert "rank1" in contexts
    assert _keys(reader) == [rank0.key]


# ---------------------------------------------------------------------- autolog


def test_autolog_logs_fit_arguments_and_checkpoints_and_unpatches(
    comet_env: Any, reader: Any, tmp_path: Path, no_autolog: Any, caplog: Any
) -> None:
    original = keras.Model.fit
    assert not getattr(original, "comet_autolog", False), (
        "importing the integration patches nothing"
    )
    assert not comet_keras._patched

    autolog(log_checkpoints=True)
    assert keras.Model.fit.comet_autolog is True
    assert keras.Model.fit.__wrapped__ is original
    x, y = _data()
    ckpt = keras.callbacks.ModelCheckpoint(str(tmp_path / "ckpt" / "m-{epoch:02d}.keras"))
    user_callbacks = [ckpt]
    model = _model()
    model.fit(x, y, epochs=2, batch_size=16, validation_split=0.25, callbacks=user_callbacks)
    assert user_callbacks == [ckpt], "the caller's list is not modified"
    key = _only_experiment(reader)
    params = reader.parameters(key)
    assert params["batch_size"] == "16"
    assert params["epochs"] == "2"
    assert float(params["validation_split"]) == 0.25
    assert params["initial_epoch"] == "0"
    assert params["class_weight"] == "false"
    assert reader.others(key)["status"] == "success"
    elements = {a["fileName"] for a in reader.assets(key, type="model-element")}
    assert elements == {"m-01.keras", "m-02.keras", "keras-model.keras"}
    names = {m["modelName"] for m in reader.models(key)}
    assert names == {"keras-model", "keras-model-checkpoints"}
    _no_warnings(caplog)

    autolog(disable=True)
    assert keras.Model.fit is original
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    assert len(_keys(reader)) == 1, "no experiment once disabled"


class Boom(RuntimeError):
    pass


def test_autolog_failing_fit_marks_failed_and_reraises_unchanged(
    comet_env: Any, reader: Any, no_autolog: Any
) -> None:
    boom = Boom("epoch 1 exploded")

    class Explode(keras.callbacks.Callback):
        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if epoch == 1:
                raise boom

    autolog(log_model=False)
    x, y = _data(32)
    with pytest.raises(Boom) as caught:
        _model().fit(x, y, epochs=3, batch_size=16, callbacks=[Explode()], verbose=0)
    assert caught.value is boom
    key = _only_experiment(reader)
    others = reader.others(key)
    assert others["status"] == "failed" and others["hasCrashed"] == "true"
    # epoch 1 raised in a callback before ours (autolog appends it last): only epoch 0 logged
    assert [s for s, _, _ in _series(reader, key, "loss")] == [2]
    assert reader.models(key) == []


# ---------------------------------------------------------------------- other backends, in a subprocess


def _logged_batch_steps(steps: int, spe: int, every: int, epochs: int) -> list[int]:
    """Where batch logs must land: executions of ``spe`` steps; log at the step an
    execution reaches when it passed a multiple of ``every``."""
    out, done = [], 0
    for _ in range(epochs):
        for first in range(0, steps, spe):
            last = min(first + spe, steps)
            if (done + last) // every > (done + first) // every:
                out.append(done + last)
        done += steps
    return out


@pytest.mark.parametrize(
    ("backend", "spe"),
    # the torch backend only supports steps_per_execution=1; with JAX, 8 steps per epoch in
    # executions of 3 end with a partial one (Keras still reports its nominal last batch)
    [("torch", 1), ("jax", 3)],
)
def test_backend_subprocess_batch_steps_and_no_tensorflow(
    comet_env: Any, reader: Any, tmp_path: Path, backend: str, spe: int
) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    out = tmp_path / "result.json"
    env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu", OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), str(out), str(spe), "3"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["backend"] == backend and result["ended"]

    # TensorFlow is never imported, and our code never even looks for it
    assert result["tf_modules"] == []
    ours = [
        a
        for a in result["tf_attempts"]
        if any("comet_callbacks" in f or "integrations" in f for f in a["stack"])
    ]
    assert ours == []

    key = result["key"]
    assert reader.others(key)["status"] == "success"
    loss = _series(reader, key, "loss")
    assert [(s, e) for s, e, _ in loss] == [(8, 0), (16, 1)]  # 64 samples / 8 = 8 steps
    assert [v for _, _, v in loss] == pytest.approx(result["history"]["loss"], rel=1e-6)
    assert result["iterations"] == 16

    batch = _series(reader, key, "batch_loss")
    expected = _logged_batch_steps(steps=8, spe=spe, every=3, epochs=2)
    assert [s for s, _, _ in batch] == expected
    # steps are optimizer steps Keras really reached, never past an epoch's end
    assert set(expected) <= set(result["batch_end_iterations"])
    assert [e for _, e, _ in batch] == [(s - 1) // 8 for s in expected]


def test_quickstart_example_runs_online(
    comet_env: Any, reader: Any, monkeypatch: Any, tmp_path: Path, capsys: Any
) -> None:
    path = Path(__file__).parents[1] / "examples" / "keras_quickstart.py"
    temp = tmp_path / "tmpdir"  # the system temp folder, as the example sees it
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    spec = importlib.util.spec_from_file_location("keras_quickstart", path)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    monkeypatch.setattr(sys, "argv", [str(path), "--epochs", "1"])
    example.main()
    exps = reader.experiments(WS, "keras-quickstart")
    assert len(exps) == 1
    key = exps[0]["experimentKey"]
    assert len(reader.metrics(key, "val_accuracy")) == 1
    assert len(reader.metrics(key, "eval_accuracy")) == 1
    assert set(reader.tags(key)) == {"keras", "torch"}
    assert reader.others(key)["status"] == "success"
    assert f"experiment: {comet_env.url}/{WS}/keras-quickstart/{key}" in capsys.readouterr().out
    # nothing of ours (or the example's) is left; torch may keep its compile cache there
    assert [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")] == []


def test_set_model_graph_of_a_keras_model_is_its_architecture(comet_env: Any, reader: Any) -> None:
    """``Experiment.set_model_graph(model)`` with a Keras model stores ``model.to_json()`` (the
    architecture the web UI draws), not the model's repr; other objects keep their ``str``."""
    from comet_callbacks import Experiment

    model = _model()
    with Experiment(experiment_name="graph", auto_log_graph=False) as exp:
        exp.set_model_graph(model)
    assert json.loads(reader.graph(exp.key)) == json.loads(model.to_json())

    class Described:
        def __str__(self) -> str:
            return "Described(3 layers)"

    with Experiment(experiment_name="graph2") as exp2:
        exp2.set_model_graph(Described())
    assert reader.graph(exp2.key) == "Described(3 layers)"
