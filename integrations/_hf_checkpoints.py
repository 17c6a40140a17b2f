"""Checkpoint folders and logs of the Hugging Face ``Trainer``, as the transformers
integration (``transformers.py``) reads and writes them: where the experiment key is stored
for a resume, which checkpoint files are training state rather than model, and how Trainer
log keys become metric names."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

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


def rewrite_logs(logs: Mapping[str, Any]) -> dict[str, Any]:
    """Trainer log keys → metric names, as transformers' trackers (W&B, Comet) name them:
    ``eval_x`` → ``eval/x``, ``test_x`` → ``test/x``, anything else ``x`` → ``train/x``."""
    out: dict[str, Any] = {}
    for k, v in logs.items():
        if k.startswith("eval_"):
            out["eval/" + k[5:]] = v
        elif k.startswith("test_"):
            out["test/" + k[5:]] = v
        else:
            out["train/" + k] = v
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
            if all(k in last and last[k] is v for k, v in logs.items()):
                return {k: v for k, v in last.items() if k != "step"}
    return logs


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
