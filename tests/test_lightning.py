"""Lightning integration: real tiny training on CPU against the local Comet server.

Every test compares what the SERVER stored with what Lightning logged.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
lightning_mod = pytest.importorskip("comet_callbacks.integrations.lightning")

import torch  # noqa: E402
from comet_callbacks.integrations.lightning import (  # noqa: E402
    CometCallback,
    CometLogger,
    _callbacks_factory,
    pl,
)

HERE = Path(__file__).parent
SCRIPTS = HERE / "lightning_scripts"
sys.path.insert(0, str(SCRIPTS))

from tiny import RecordingLogger, TinyModel, loader  # noqa: E402

torch.set_num_threads(1)


def make_trainer(tmp_path: Path, callbacks: list[Any] | None = None, **kw: Any) -> Any:
    args: dict[str, Any] = dict(
        max_epochs=2,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=str(tmp_path / "run"),
        num_sanity_val_steps=1,
    )
    args.update(kw)
    return pl.Trainer(callbacks=callbacks or [], **args)


def only_experiment(reader: Any) -> str:
    exps = reader.experiments("local", "general")
    assert len(exps) == 1, exps
    return exps[0]["experimentKey"]


def series(reader: Any, key: str, name: str) -> list[dict[str, Any]]:
    return sorted(reader.metrics(key, name), key=lambda p: (p["step"] or 0, p["timestamp"]))


def test_callback_logs_metrics_params_graph(comet_env: Any, reader: Any, tmp_path: Path) -> None:
    pl.seed_everything(7)
    cb = CometCallback(log_model=False)
    rec = RecordingLogger()
    trainer = make_trainer(tmp_path, [cb], logger=rec)
    model = TinyModel(lr=0.05, opt={"name": "sgd", "nested": {"momentum": 0.9}})
    trainer.fit(model, loader(), loader(16, seed=1))
    fit_metrics = dict(trainer.logged_metrics)
    trainer.test(model, loader(16, seed=2))

    key = only_experiment(reader)
    assert cb.experiment_key == key
    assert any(isinstance(lg, CometLogger) for lg in trainer.loggers)

    # Each metric Lightning handed to loggers: the server's last value equals it.
    logged = {k: float(v) for k, v in fit_metrics.items() if k != "epoch"}
    logged["test_loss"] = float(trainer.logged_metrics["test_loss"])
    assert {"train_loss_step", "train_loss_epoch", "val_loss", "test_loss"} <= set(logged)
    for name, value in logged.items():
        points = series(reader, key, name)
        assert points, name
        assert float(points[-1]["metricValue"]) == pytest.approx(value, rel=1e-6), name
        assert all(p["epoch"] is not None for p in points), name

    # Every point Lightning passed to loggers is on the server once, with its step and epoch.
    for name in ("train_loss_step", "train_loss_epoch", "val_loss", "test_loss"):
        want = rec.points(name)
        got = [(float(p["metricValue"]), p["step"], p["epoch"]) for p in series(reader, key, name)]
        assert len(got) == len(want), name
        for (gv, gs, ge), (wv, ws, we) in zip(got, want, strict=True):
            assert (gs, ge) == (ws, we) and gv == pytest.approx(wv, rel=1e-6), name
    # Steps are optimizer steps: 4 batches x 2 epochs; validation ran twice (no sanity point).
    steps = series(reader, key, "train_loss_step")
    assert [p["step"] for p in steps] == list(range(8))
    assert [p["epoch"] for p in steps] == [0] * 4 + [1] * 4
    assert len(series(reader, key, "val_loss")) == 2
    assert reader.metrics(key, "epoch") == []

    params = reader.parameters(key)
    assert params["lr"] == "0.05"
    assert params["opt|nested|momentum"] == "0.9"
    assert params["trainer|max_epochs"] == "2"
    assert params["trainer|accumulate_grad_batches"] == "1"
    assert params["trainer|strategy"] == "SingleDeviceStrategy"
    assert params["trainer|precision"] == "32-true"
    assert params["trainer|seed"] == "7"
    assert params["optimizer|class"] == "SGD"
    assert params["optimizer|momentum"] == "0.9"
    assert params["lr_scheduler|class"] == "StepLR"
    assert params["lr_scheduler|gamma"] == "0.5"
    total = sum(p.numel() for p in model.parameters())
    assert params["model|total_params"] == str(total)
    assert params["model|trainable_params"] == str(total - 6)
    assert "Sequential" in (reader.graph(key) or "")
    # all of them logged by the integration itself: their batch items said so
    with sqlite3.connect(comet_env.db_path) as conn:
        sources = conn.execute("SELECT DISTINCT source FROM params WHERE exp_key=?", (key,))
        assert sources.fetchall() == [("auto-logged",)]

    meta = reader.metadata(key)
    assert meta["running"] is False
    others = reader.others(key)
    assert others["status"] == "success"
    assert others["Created from"] == "pytorch-lightning"


def checkpoint_trainer(tmp_path: Path, cb: Any, **kw: Any) -> tuple[Any, Any]:
    ckpt = pl.callbacks.ModelCheckpoint(
        dirpath=str(tmp_path / "ckpt"), monitor="val_loss", save_top_k=1, save_last=True
    )
    return make_trainer(tmp_path, [cb, ckpt], **kw), ckpt


def test_best_checkpoint_logged_as_model_and_registered(
    comet_env: Any, reader: Any, tmp_path: Path
) -> None:
    cb = CometCallback(log_model=True, registry_name="tiny-reg")
    trainer, ckpt = checkpoint_trainer(tmp_path, cb)
    trainer.fit(TinyModel(), loader(), loader(16, seed=1))
    key = only_experiment(reader)

    best, last = Path(ckpt.best_model_path), Path(ckpt.last_model_path)
    models = [a for a in reader.assets(key) if a["type"] == "model-element"]
    assert [a["fileName"] for a in models] == [best.name]
    assert reader.get_asset(key, models[0]["assetId"]) == best.read_bytes()
    meta = json.loads(models[0]["metadata"])
    assert meta["monitor"] == "val_loss"
    assert meta["score"] == pytest.approx(float(ckpt.best_model_score))
    assert meta["epoch"] == 1 and meta["best"] is True
    # True = best and last at the end: last.ckpt as a checkpoint asset, same bytes as on disk.
    ckpts = reader.assets(key, type="checkpoint")
    assert [a["fileName"] for a in ckpts] == [last.name]
    assert reader.get_asset(key, ckpts[0]["assetId"]) == last.read_bytes()

    details = reader.registry_details("local", "tiny-reg")
    assert [v["version"] for v in details["versions"]] == ["1.0.0"]
    assert details["versions"][0]["experimentModel"]["experimentKey"] == key
    assert details["versions"][0]["experimentModel"]["experimentModelName"] == "TinyModel"
    assert reader.others(key)["status"] == "success"


def test_log_model_all_uploads_every_save(comet_env: Any, reader: Any, tmp_path: Path) -> None:
    ckpt = pl.callbacks.ModelCheckpoint(dirpath=str(tmp_path / "ckpt"), save_top_k=-1)
    trainer = make_trainer(tmp_path, [CometCallback(log_model="all"), ckpt])
    trainer.fit(TinyModel(), loader(), loader(16, seed=1))
    key = only_experiment(reader)
    on_disk = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert len(on_disk) == 2
    uploaded = reader.assets(key, type="checkpoint")
    assert sorted(a["fileName"] for a in uploaded) == on_disk
    for a in uploaded:
        assert (
            reader.get_asset(key, a["assetId"]) == (tmp_path / "ckpt" / a["fileName"]).read_bytes()
        )
        assert json.loads(a["metadata"])["epoch"] in (0, 1)


def test_final_weights_without_checkpoint_env_config(
    comet_env: Any, reader: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMET_LOG_MODEL", "true")
    monkeypatch.setenv("COMET_MODEL_REGISTRY_NAME", "env-reg")
    model = TinyModel()
    trainer = make_trainer(tmp_path, [CometCallback()], enable_checkpointing=False, max_epochs=1)
    trainer.fit(model, loader(), loader(16, seed=1))
    key = only_experiment(reader)
    models = [a for a in reader.assets(key) if a["type"] == "model-element"]
    assert len(models) == 1
    data = reader.get_asset(key, models[0]["assetId"])
    state = torch.load(io.BytesIO(data), weights_only=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(state[name], tensor), name
    assert json.loads(models[0]["metadata"])["source"] == "final_weights"
    versions = reader.registry_details("local", "env-reg")["versions"]
    assert [v["version"] for v in versions] == ["1.0.0"]


def test_exception_in_training_marks_failed(comet_env: Any, reader: Any, tmp_path: Path) -> None:
    trainer = make_trainer(tmp_path, [CometCallback()])
    with pytest.raises(ValueError, match="boom in training_step"):
        trainer.fit(TinyModel(fail_at_step=2), loader(), loader(16, seed=1))
    key = only_experiment(reader)
    assert reader.metadata(key)["running"] is False
    others = reader.others(key)
    assert others["status"] == "failed"
    assert others["hasCrashed"] in ("true", "True", "1")
    assert [p["step"] for p in series(reader, key, "train_loss_step")] == [0, 1]
    assert reader.assets(key, type="model-element") == []  # no model for a failed run


def test_keyboard_interrupt_marks_interrupted(comet_env: Any, reader: Any, tmp_path: Path) -> None:
    class Interrupted(TinyModel):
        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if self.global_step == 1:
                raise KeyboardInterrupt
            return super().training_step(batch, batch_idx)

    trainer = make_trainer(tmp_path, [CometCallback()])
    previous = signal.getsignal(signal.SIGINT)
    try:
        with pytest.raises(SystemExit):  # Lightning turns Ctrl-C into a graceful exit(1)
            trainer.fit(Interrupted(), loader(), loader(16, seed=1))
    finally:
        signal.signal(signal.SIGINT, previous)
    key = only_experiment(reader)
    assert reader.metadata(key)["running"] is False
    assert reader.others(key)["status"] == "interrupted"


def test_resume_continues_same_experiment(comet_env: Any, reader: Any, tmp_path: Path) -> None:
    cb1 = CometCallback(log_model=False)
    trainer, ckpt = checkpoint_trainer(tmp_path, cb1, max_epochs=1)
    trainer.fit(TinyModel(), loader(), loader(16, seed=1))
    key = only_experiment(reader)
    assert torch.load(ckpt.last_model_path, weights_only=False)["comet_callbacks"] == {
        "experiment_key": key
    }

    cb2 = CometCallback(log_model=False)
    trainer2, _ = checkpoint_trainer(tmp_path, cb2, max_epochs=2)
    trainer2.fit(TinyModel(), loader(), loader(16, seed=1), ckpt_path=ckpt.last_model_path)
    assert only_experiment(reader) == key
    assert cb2.experiment_key == key
    steps = series(reader, key, "train_loss_step")
    assert [p["step"] for p in steps] == list(range(8))  # continues at 4, no repeats
    assert [p["epoch"] for p in steps] == [0] * 4 + [1] * 4
    assert [p["step"] for p in series(reader, key, "val_loss")] == sorted(
        {p["step"] for p in series(reader, key, "val_loss")}
    )
    assert reader.others(key)["status"] == "success"


def test_fast_dev_run_creates_no_experiment(comet_env: Any, reader: Any, tmp_path: Path) -> None:
    cb = CometCallback()
    trainer = make_trainer(tmp_path, [cb], fast_dev_run=True, logger=CometLogger())
    trainer.fit(TinyModel(), loader(), loader(16, seed=1))
    assert cb.experiment is None
    assert reader.projects("local") == []  # not even the default project was created


def test_non_zero_launcher_rank_logs_nothing(
    comet_env: Any, reader: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process the launcher (MPI here) says is rank 1 creates no experiment, even when
    Lightning itself was not told about the other ranks."""
    monkeypatch.setenv("PMI_RANK", "1")
    cb = CometCallback()
    trainer = make_trainer(tmp_path, [cb], max_epochs=1)
    trainer.fit(TinyModel(), loader(), loader(16, seed=1))
    assert cb.experiment is None and cb.experiment_key is None
    assert reader.projects("local") == []


def test_factory_is_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COMET_LIGHTNING_AUTO", raising=False)
    assert _callbacks_factory() == []
    monkeypatch.setenv("COMET_LIGHTNING_AUTO", "1")
    made = _callbacks_factory()
    assert len(made) == 1 and isinstance(made[0], CometCallback) and made[0]._auto


def _run_script(
    mode: str, out: Path, env_extra: dict[str, str], timeout: float, torchrun: bool = False
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COMET_", "PL_", "RANK"))}
    env.update({k: v for k, v in os.environ.items() if k.startswith("COMET_")})
    env.update(env_extra, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    launcher = [sys.executable]
    if torchrun:  # torchrun starts both ranks itself; Lightning then launches nothing
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = str(sock.getsockname()[1])
        launcher += ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
    proc = subprocess.run(
        [*launcher, str(SCRIPTS / "train.py"), mode, str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def test_zero_code_activation_via_entry_point(comet_env: Any, reader: Any, tmp_path: Path) -> None:
    _run_script("auto", tmp_path, {"COMET_LIGHTNING_AUTO": "1"}, timeout=300)
    res = json.loads((tmp_path / "auto.json").read_text())
    exps = reader.experiments("local", "general")
    assert len(exps) == 2  # one per fit, never two for the same run
    # The factory alone: one callback (the auto one), attached one logger.
    assert res["factory"]["auto"] == [True] and res["factory"]["loggers"] == 1
    # User's callback + factory's: the user's drives, the factory's stays inert.
    user = res["user"]
    assert user["callbacks"] == 2 and user["loggers"] == 1
    active = [a for a, on in zip(user["auto"], user["active"], strict=True) if on]
    assert active == [False]
    user_key = [k for k in user["keys"] if k][0]
    names = {e["experimentKey"]: e.get("experimentName") for e in exps}
    assert names[user_key] == "user-callback"
    assert res["factory"]["keys"][0] in names


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn", "torchrun"])
def test_ddp_two_processes_one_experiment(
    comet_env: Any, reader: Any, tmp_path: Path, strategy: str
) -> None:
    mode = "ddp" if strategy == "torchrun" else strategy
    _run_script(
        mode,
        tmp_path,
        {"COMET_DISTRIBUTED_SYSTEM_METRICS": "1"},
        timeout=400,
        torchrun=strategy == "torchrun",
    )
    key = only_experiment(reader)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["key"] for r in ranks] == [key, key]  # rank 1 learned the key by broadcast
    calls = ranks[0]["calls"]
    for name in ("train_loss_step", "val_loss", "train_loss_epoch"):
        want = [(m[name], step, int(m["epoch"])) for m, step in calls if name in m]
        got = [(float(p["metricValue"]), p["step"], p["epoch"]) for p in series(reader, key, name)]
        assert len(got) == len(want) > 0, name  # each point once, not once per rank
        for (gv, gs, ge), (wv, ws, we) in zip(got, want, strict=True):
            assert (gs, ge) == (ws, we) and gv == pytest.approx(wv, rel=1e-6), name
    # 32 samples, 2 ranks, batch 8: 2 optimizer steps per epoch.
    assert [p["step"] for p in series(reader, key, "train_loss_step")] == [0, 1, 2, 3]
    assert reader.parameters(key)["trainer|strategy"] == "DDPStrategy"  # ddp_spawn too
    assert reader.parameters(key)["trainer|world_size"] == "2"
    assert reader.others(key)["status"] == "success"
    assert reader.metadata(key)["running"] is False


def test_quickstart_example_runs_online(comet_env: Any, reader: Any, tmp_path: Path) -> None:
    example = HERE.parent / "examples" / "lightning_quickstart.py"
    temp = tmp_path / "tmpdir"  # the system temp folder, as the example sees it
    temp.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS="1", TMPDIR=str(temp))
    proc = subprocess.run(
        [sys.executable, str(example), "--max-steps", "6", "--project", "qs"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    exps = reader.experiments("local", "qs")
    assert len(exps) == 1
    key = exps[0]["experimentKey"]
    link = f"{comet_env.url}/local/qs/{key}"
    assert f"Comet experiment {key}: {link}" in proc.stdout  # the link, not only the key
    assert f"comet_callbacks: experiment is live at {link}" in proc.stderr
    # nothing of ours (or the example's) is left; torch may keep its compile cache there
    assert [p.name for p in temp.iterdir() if not p.name.startswith("torchinductor_")] == []
    assert list((tmp_path / "comet-offline").iterdir()) == []  # delivered: the spool is gone
    assert [p["step"] for p in series(reader, key, "train_loss_step")] == [4]  # every 5 steps
    assert reader.parameters(key)["trainer|max_steps"] == "6"
    assert reader.others(key)["status"] == "success"


@pytest.mark.parametrize(
    "status, outcome",
    [("aborted", "interrupted"), ("interrupted", "interrupted"), ("failed", "failed")],
)
def test_finalize_status_contract(comet_env: Any, reader: Any, status: str, outcome: str) -> None:
    """As Lightning's own logger tests call it: ``finalize(status)`` with the statuses its docs
    name; only a failure status means failed."""
    logger = CometLogger()
    logger.log_metrics({"loss": 0.5}, step=0)
    logger.finalize(status)
    key = only_experiment(reader)
    assert reader.metadata(key)["running"] is False
    assert reader.others(key)["status"] == outcome


def test_finalize_with_another_status_only_flushes(comet_env: Any, reader: Any) -> None:
    logger = CometLogger()
    logger.log_metrics({"loss": 0.5}, step=0)
    logger.finalize("finished")  # e.g. SLURM requeue: the run goes on
    logger.finalize("some-third-party-status")
    key = only_experiment(reader)
    assert [p["step"] for p in series(reader, key, "loss")] == [0]  # flushed
    assert not logger.experiment.ended and reader.metadata(key)["running"] is True
    logger.finalize("success")
    assert reader.others(key)["status"] == "success"


@pytest.mark.parametrize("case", ["online", "disabled", "untracked", "rank1"])
def test_checkpoint_folder_is_named_by_the_logger_version(
    comet_env: Any, reader: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """``Trainer(logger=CometLogger())`` first: ``ModelCheckpoint`` asks the logger's version at
    setup to name its folder, which must never be ``version_None`` (a run with no experiment:
    disabled, untracked after a refused key and an unwritable folder, a non-zero rank)."""
    if case == "untracked":
        monkeypatch.setenv("COMET_API_KEY", "refused-key")
        (tmp_path / "a-file").write_text("")
        monkeypatch.setenv("COMET_OFFLINE_DIRECTORY", str(tmp_path / "a-file" / "offline"))
    elif case == "rank1":
        monkeypatch.setenv("PMI_RANK", "1")
    logger = CometLogger(log_model=False, mode="disabled" if case == "disabled" else None)
    ckpt = pl.callbacks.ModelCheckpoint(monitor="val_loss")
    trainer = make_trainer(tmp_path, [ckpt, CometCallback()], logger=logger, max_epochs=1)
    trainer.fit(TinyModel(), loader(), loader(16, seed=1))  # trains, whatever the case
    folder = Path(ckpt.dirpath).parent  # <root>/<project>/<version>/checkpoints
    assert folder.parent == tmp_path / "run" / "general"
    assert folder.name == logger.version and len(folder.name) == 32
    int(folder.name, 16)  # a 32-hex id, the format of an experiment key
    assert [p.suffix for p in Path(ckpt.dirpath).iterdir()] == [".ckpt"]
    if case == "online":
        assert folder.name == only_experiment(reader)
    else:
        assert reader.projects("local") == []


def test_rewritten_checkpoint_uploads_the_logged_content(
    comet_env: Any, reader: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``last.ckpt`` is logged after epoch 0, then rewritten after epoch 1 (before anything is
    uploaded: offline). Each upload holds the content it had when logged, from the core's one
    snapshot; nothing is left in the temp folder."""
    import tempfile

    temp = tmp_path / "tmpdir"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    ckpt = pl.callbacks.ModelCheckpoint(
        dirpath=str(tmp_path / "ckpt"), save_top_k=-1, save_last=True
    )
    cb = CometCallback(log_model="all", mode="offline")
    trainer = make_trainer(tmp_path, [cb, ckpt])
    trainer.fit(TinyModel(), loader(), loader(16, seed=1))
    run = cb.experiment.offline_path
    assert torch.load(ckpt.last_model_path, weights_only=False)["global_step"] == 8
    assert list(temp.iterdir()) == []
    from comet_callbacks.upload import upload_run

    res = upload_run(run)
    assert res.complete, res.errors
    uploaded = reader.assets(res.experiment_key, type="checkpoint")
    saved = [
        torch.load(
            io.BytesIO(reader.get_asset(res.experiment_key, a["assetId"])), weights_only=False
        )
        for a in uploaded
        if a["fileName"] == "last.ckpt"
    ]
    assert sorted(c["global_step"] for c in saved) == [4, 8]  # after epoch 0, after epoch 1


class _StepValidation(TinyModel):
    """Logs a validation metric per step as well (the sanity check's points must not reach the
    server; the logger also skips any Lightning would hand over while sanity checking)."""

    def validation_step(self, batch, batch_idx):  # noqa: ANN001
        loss = self._loss(batch)
        self.log("val_step_loss", loss, on_step=True, on_epoch=False)
        self.log("val_loss", loss)


@pytest.mark.parametrize("prefix", [None, "pre"])
def test_step_metrics_skip_the_sanity_check_with_and_without_prefix(
    comet_env: Any, reader: Any, tmp_path: Path, prefix: str | None
) -> None:
    """The logger's per-step path (no prefix) and its prefixed path store the same points:
    every training and validation step once, none from the sanity check, names
    ``prefix-name``, the epoch in its own field."""
    pl.seed_everything(3)
    rec = RecordingLogger()
    logger = CometLogger(prefix=prefix, log_model=False)
    trainer = make_trainer(tmp_path, logger=[logger, rec], num_sanity_val_steps=2)
    trainer.fit(_StepValidation(), loader(), loader(16, seed=1))
    key = only_experiment(reader)
    named = (lambda n: f"{prefix}-{n}") if prefix else (lambda n: n)
    # 2 validation batches per epoch x 2 epochs; the sanity check's 2 are not there
    want = rec.points("val_step_loss")
    assert len(want) == 4
    got = [
        (float(p["metricValue"]), p["step"]) for p in series(reader, key, named("val_step_loss"))
    ]
    assert sorted(got) == sorted((v, s) for v, s, _ in want)
    steps = series(reader, key, named("train_loss_step"))
    assert [p["step"] for p in steps] == list(range(8))
    assert [p["epoch"] for p in steps] == [0] * 4 + [1] * 4
    names = {m["name"] for m in reader.metric_summary(key) if not m["name"].startswith("sys.")}
    assert names and all(n.startswith("pre-") for n in names) == bool(prefix)
    assert named("epoch") not in names
