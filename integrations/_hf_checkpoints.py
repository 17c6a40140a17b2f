"""Checkpoint folders and logs of the Hugging Face ``Trainer``, as the transformers
integration (``transformers.py``) reads and writes them: where the experiment key is stored
for a resume, which checkpoint files are training state rather than model, how Trainer
log keys become metric names, and which folder is uploaded as the final model."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from comet_callbacks.experiment import Experiment
from comet_callbacks.values import to_metric_value

from ._toolkit import log_final_model

log = logging.getLogger("comet_callbacks")

#: Written into each checkpoint folder by the main process: ``{"experiment_key": ...}``.
KEY_FILE = "comet_experiment.json"

# What a checkpoint holds besides the model and its processor (kept out of a "model" upload).
_TRAINING_STATE_FILES = frozenset(
    {
        "optimizer.pt",
        "optimizer.bin",
        "scheduler.pt",
        "scaler.pt",
        "trainer_state.json",
        "training_args.bin",
        KEY_FILE,
    }
)


def metric_name(key: str) -> str:
    """A Trainer log key's metric name, as transformers' trackers (W&B, Comet) name them:
    ``eval_x`` → ``eval/x``, ``test_x`` → ``test/x``, anything else ``x`` → ``train/x``."""
    if key.startswith("eval_"):
        return "eval/" + key[5:]
    if key.startswith("test_"):
        return "test/" + key[5:]
    return "train/" + key


def rewrite_logs(logs: Mapping[str, Any]) -> dict[str, Any]:
    """Trainer logs under their metric names (:func:`metric_name`)."""
    return {metric_name(k): v for k, v in logs.items()}


def log_metrics_of(logs: Mapping[str, Any]) -> dict[str, float | int]:
    """``numbers(rewrite_logs(logs))`` in one pass (called on every logging step): the
    numeric entries under their metric names; strings and arrays are left out."""
    out: dict[str, float | int] = {}
    for k, v in logs.items():
        name = metric_name(k)
        try:
            out[name] = to_metric_value(v, name)
        except ValueError:
            continue
    return out


def stored_key(args: Any, state: Any, callback_name: str, saved: str | None) -> str | None:
    """The experiment key saved with the checkpoint this training resumed from: the callback's
    entry ``callback_name`` in ``trainer_state.json``, else ``saved`` (restored by the Trainer
    into the callback), else the checkpoint's :data:`KEY_FILE`."""
    if not state.global_step:  # a fresh TrainerState: not resuming
        return None
    stored = (getattr(state, "stateful_callbacks", None) or {}).get(callback_name)
    if isinstance(stored, list):
        stored = stored[0] if stored else None
    if isinstance(stored, Mapping):
        key = (stored.get("attributes") or {}).get("_saved_experiment_key")
        if isinstance(key, str) and key:
            return key
    if saved:
        return saved
    path = os.path.join(args.output_dir, f"checkpoint-{state.global_step}", KEY_FILE)
    try:
        with open(path, encoding="utf-8") as fh:
            key = json.load(fh).get("experiment_key")
        return key if isinstance(key, str) and key else None
    except (OSError, ValueError, AttributeError):
        return None


def write_key(folder: str, key: str) -> None:
    """Store the experiment key in a checkpoint folder (:data:`KEY_FILE`)."""
    with open(os.path.join(folder, KEY_FILE), "w", encoding="utf-8") as fh:
        json.dump({"experiment_key": key}, fh)


def unmutated(logs: Mapping[str, Any], state: Any) -> Mapping[str, Any]:
    """The entry ``Trainer.log`` recorded for these logs: callbacks called before this one may
    have removed keys from ``logs`` (``PrinterCallback`` pops ``total_flos``), not from
    ``state.log_history``."""
    history = getattr(state, "log_history", None)
    if history:
        last = history[-1]
        if isinstance(last, Mapping) and last.get("step") == state.global_step:
            for k, v in logs.items():
                if last.get(k, _MISSING) is not v:
                    return logs
            return {k: v for k, v in last.items() if k != "step"}
    return logs


_MISSING = object()


def training_state(file_name: str) -> bool:
    """A checkpoint file that holds the Trainer's resume state, not the model."""
    return file_name in _TRAINING_STATE_FILES or file_name.startswith("rng_state")


def last_checkpoint(output_dir: str) -> str | None:
    """The ``checkpoint-<N>`` folder with the highest N in ``output_dir``."""
    try:
        names = [
            n
            for n in os.listdir(output_dir)
            if n.startswith("checkpoint-") and n[11:].isdigit()
            if os.path.isdir(os.path.join(output_dir, n))
        ]
    except OSError:
        return None
    if not names:
        return None
    return os.path.join(output_dir, max(names, key=lambda n: int(n[11:])))


def log_trainer_model(
    exp: Experiment,
    args: Any,
    state: Any,
    model: Any,
    processor: Any,
    name: str,
    mode: bool | str,
    registry_name: str | None,
) -> None:
    """Upload the final (or best) model with its processor as the experiment model ``name``
    (``mode``: the ``log_model`` in force); register it when asked."""
    best = state.best_model_checkpoint
    sharded = bool(getattr(args, "deepspeed", None) or getattr(args, "fsdp", None))
    source = None
    if mode == "best" and not args.load_best_model_at_end and best:
        source = best  # the model in memory is the last one, not the best
    elif sharded or model is None or (mode == "last" and args.load_best_model_at_end):
        # a sharded model cannot be saved from one rank, and "last" asks for the last state
        # where the best was loaded at the end: take what the Trainer saved
        source = last_checkpoint(args.output_dir)
        if source is None:
            log.warning("comet_callbacks: no checkpoint to upload as model %r", name)
            return
    if source is not None and os.path.isdir(source):
        folder = source  # its model files, as the Trainer saved them (the core snapshots)
    else:
        folder = os.path.join(exp.scratch_folder(), name)
        model.save_pretrained(folder)
        if processor is not None and hasattr(processor, "save_pretrained"):
            processor.save_pretrained(folder)
    log_final_model(
        exp,
        name,
        folder,
        registry_name=registry_name,
        skip=training_state,
        metadata={"global_step": state.global_step, "best_checkpoint": best},
        step=state.global_step,
    )


def remember_in_state(state: Any, callback_name: str, entry: Callable[[], Any]) -> None:
    """Make sure ``trainer_state.json`` can hold the callback's entry: a checkpoint saved
    without the callback would otherwise make the Trainer's next save fail on a missing key."""
    stored = getattr(state, "stateful_callbacks", None)
    if isinstance(stored, dict) and callback_name not in stored:
        stored[callback_name] = entry()


def json_args(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The callback's JSON-safe constructor arguments, to rebuild it from ``trainer_state.json``
    (None values and secrets left out: the API key is never written to disk)."""
    out: dict[str, Any] = {}
    for k, v in arguments.items():
        if v is not None and isinstance(v, (str, int, float, bool, list, tuple)):
            if k not in ("api_key", "experiment_key"):  # never write secrets to disk
                out[k] = list(v) if isinstance(v, tuple) else v
    return out
