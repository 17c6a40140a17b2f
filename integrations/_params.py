"""Parameters read from framework objects: what each integration logs as its run's
configuration (trainer, optimizer, compile settings, parameter counts), as plain values
without tensors. Reading only; the framework files decide when to log them."""

from __future__ import annotations

import math
import os
from argparse import Namespace
from collections.abc import Mapping
from typing import Any

from ._toolkit import number

__all__ = [
    "fit_arguments",
    "hparams",
    "keras_parameters",
    "optimizer_config",
    "parameter_counts",
    "trainer_config",
    "trainer_parameters",
]


def parameter_counts(model: Any) -> tuple[int, int]:
    """Total and trainable parameter counts of a torch module."""
    total = trainable = 0
    for p in model.parameters():
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
    return total, trainable


# ------------------------------------------------------------------------------ Lightning


def _plain(value: Any) -> Any:
    """Configuration values without tensors: numbers, strings, bools, lists/tuples of them."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        items = [_plain(v) for v in value]
        return None if any(i is _SKIP for i in items) else items
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        return number(value)
    return _SKIP


_SKIP = object()


def hparams(params: Any) -> dict[str, Any]:
    """Lightning's hyperparameters as a dict: Namespace/AttributeDict unwrapped, callables
    (functions, classes) by name."""
    if params is None:
        return {}
    if isinstance(params, Namespace):
        params = vars(params)
    out = {}
    for k, v in dict(params).items():
        if callable(v) and not hasattr(v, "item"):
            v = getattr(v, "__qualname__", None) or getattr(v, "__name__", None) or repr(v)
        out[k] = _none_as_text(v)
    return out


def _none_as_text(value: Any) -> Any:
    """``None`` (also nested) as the text ``"None"``: the server refuses a null parameter value."""
    if value is None:
        return "None"
    if isinstance(value, Mapping):
        return {k: _none_as_text(v) for k, v in value.items()}
    return value


def trainer_config(trainer: Any) -> dict[str, Any]:
    """What the trainer was asked to do: limits, precision, accumulation, strategy, devices,
    seed (``PL_GLOBAL_SEED`` when ``seed_everything`` ran)."""
    cfg: dict[str, Any] = {
        "max_epochs": trainer.max_epochs,
        "max_steps": trainer.max_steps,
        "min_epochs": getattr(trainer.fit_loop, "min_epochs", None),
        "precision": str(trainer.precision),
        "accumulate_grad_batches": trainer.accumulate_grad_batches,
        "gradient_clip_val": trainer.gradient_clip_val,
        "gradient_clip_algorithm": trainer.gradient_clip_algorithm,
        "strategy": type(trainer.strategy).__name__,
        "accelerator": type(trainer.accelerator).__name__,
        "devices": trainer.num_devices,
        "num_nodes": trainer.num_nodes,
        "world_size": trainer.world_size,
        "check_val_every_n_epoch": trainer.check_val_every_n_epoch,
        "val_check_interval": trainer.val_check_interval,
        "log_every_n_steps": trainer.log_every_n_steps,
    }
    seed = os.environ.get("PL_GLOBAL_SEED")
    if seed is not None:
        cfg["seed"] = int(seed) if seed.lstrip("-").isdigit() else seed
    return {k: v for k, v in cfg.items() if v is not None}


def _hyper(mapping: Mapping[str, Any], skip: tuple[str, ...] = ("params",)) -> dict[str, Any]:
    out = {}
    for k, v in mapping.items():
        if k in skip or str(k).startswith("_"):
            continue
        p = _plain(v)
        if p is not _SKIP and p is not None:
            out[str(k)] = p
    return out


def optimizer_config(trainer: Any) -> dict[str, Any]:
    """Each optimizer's class and param groups' hyperparameters (no tensors), and each LR
    scheduler's class, interval, frequency and settings."""
    out: dict[str, Any] = {}
    opts = list(getattr(trainer, "optimizers", []) or [])
    for i, opt in enumerate(opts):
        groups = [_hyper(g) for g in opt.param_groups]
        entry: dict[str, Any] = {"class": type(opt).__name__}
        if len(groups) == 1:
            entry.update(groups[0])
        else:
            entry["param_groups"] = {str(j): g for j, g in enumerate(groups)}
        out["optimizer" if len(opts) == 1 else f"optimizer_{i}"] = entry
    scheds = list(getattr(trainer, "lr_scheduler_configs", []) or [])
    for i, sc in enumerate(scheds):
        sched = sc.scheduler
        entry = {"class": type(sched).__name__, "interval": sc.interval, "frequency": sc.frequency}
        if sc.monitor:
            entry["monitor"] = sc.monitor
        try:
            entry.update(_hyper(sched.state_dict(), skip=("optimizer", "last_epoch", "_last_lr")))
        except Exception:
            pass
        out["lr_scheduler" if len(scheds) == 1 else f"lr_scheduler_{i}"] = entry
    return out


# ------------------------------------------------------------------------------ Keras


def keras_parameters(
    model: Any, p: Mapping[str, Any], fit_args: Mapping[str, Any]
) -> dict[str, Any]:
    """Epochs, steps, ``fit()`` arguments, optimizer and its configuration, compile settings
    and parameter counts of a Keras model (``p``: the callback's ``params``)."""
    params: dict[str, Any] = {"epochs": p.get("epochs"), "steps_per_epoch": p.get("steps")}
    params.update({k: v for k, v in fit_args.items() if v is not None})
    opt = getattr(model, "optimizer", None)
    if opt is not None:
        params["optimizer"] = type(opt).__name__
        config = opt.get_config()
        params["optimizer_config"] = config
        lr = config.get("learning_rate")
        if isinstance(lr, (int, float)):
            params["learning_rate"] = lr
        elif isinstance(lr, Mapping):
            params["learning_rate_schedule"] = lr.get("class_name")
    compile_config = model.get_compile_config() if hasattr(model, "get_compile_config") else {}
    for key in ("loss", "metrics", "weighted_metrics", "loss_weights"):
        value = _object_name(compile_config.get(key))
        if value not in (None, [], {}):
            params[key] = value
    params["steps_per_execution"] = getattr(model, "steps_per_execution", 1)
    if model.built:
        params["total_params"] = int(model.count_params())
        params["trainable_params"] = sum(
            math.prod(int(d) for d in w.shape) for w in model.trainable_weights
        )
        params["non_trainable_params"] = params["total_params"] - params["trainable_params"]
    return _without_none(params)


def _without_none(value: Any) -> Any:
    """Drop ``None`` entries from nested dicts (``weight_decay: None``...): a parameter needs a
    value."""
    if isinstance(value, Mapping):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def _object_name(obj: Any) -> Any:
    """A readable name for a serialized loss/metric (string, Keras config dict, nested)."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, Mapping):
        if "class_name" in obj:
            if obj["class_name"] == "function":
                return obj.get("config")
            config = obj.get("config")
            if isinstance(config, Mapping) and config.get("name"):
                return config["name"]
            return obj["class_name"]
        return {str(k): _object_name(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_object_name(v) for v in obj]
    return getattr(obj, "name", None) or getattr(obj, "__name__", None) or type(obj).__name__


def fit_arguments(arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The ``fit()`` arguments worth recording (batch size: Keras' default 32 for arrays)."""
    x = arguments.get("x")
    batch_size = arguments.get("batch_size")
    if batch_size is None and arguments.get("steps_per_epoch") is None and hasattr(x, "shape"):
        batch_size = 32
    return {
        "batch_size": batch_size,
        "epochs": arguments.get("epochs", 1),
        "initial_epoch": arguments.get("initial_epoch", 0),
        "validation_split": arguments.get("validation_split", 0.0),
        "validation_data": arguments.get("validation_data") is not None,
        "validation_freq": arguments.get("validation_freq", 1),
        "shuffle": arguments.get("shuffle", True),
        "class_weight": arguments.get("class_weight") is not None,
        "sample_weight": arguments.get("sample_weight") is not None,
    }


# ------------------------------------------------------------------------------ Hugging Face


def trainer_parameters(args: Any, model: Any) -> dict[str, Any]:
    """``args|...`` (``TrainingArguments``), ``config|...`` (``model.config``), ``peft|...``
    and ``model|...`` (parameter counts) of a Trainer run."""
    params: dict[str, Any] = {}
    if args is not None:
        params["args"] = args.to_dict()
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "to_dict"):
        params["config"] = config.to_dict()
    peft = getattr(model, "peft_config", None)
    if peft:
        params["peft"] = {
            name: (cfg.to_dict() if hasattr(cfg, "to_dict") else cfg)
            for name, cfg in (peft.items() if isinstance(peft, Mapping) else [("", peft)])
        }
        if "" in params["peft"]:
            params["peft"] = params["peft"][""]
    counts = _hf_counts(model)
    if counts:
        params["model"] = counts
    return params


def _hf_counts(model: Any) -> dict[str, int]:
    """Total and trainable parameter counts of a torch model (empty for anything else)."""
    if not callable(getattr(model, "parameters", None)):
        return {}
    total, trainable = parameter_counts(model)
    return {"num_parameters": total, "num_trainable_parameters": trainable}
