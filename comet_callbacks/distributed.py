"""Who am I in a distributed run? Rank detection shared by every integration.

Exactly one process (global rank 0) creates and ends the experiment; the others stay silent
or, when ``COMET_DISTRIBUTED_SYSTEM_METRICS`` is on, join it only to send their own system
metrics with the context ``rank<N>``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

__all__ = ["global_rank", "world_size", "is_main_process", "rank_context", "broadcast_key"]

# Checked in order; the first one set wins.
_RANK_VARS = (
    "RANK",  # torchrun, accelerate, Lightning DDP
    "PMI_RANK",  # MPICH / Intel MPI
    "OMPI_COMM_WORLD_RANK",  # Open MPI
    "PMIX_RANK",
    "SLURM_PROCID",  # SLURM srun
    "KERAS_DISTRIBUTION_PROCESS_ID",  # Keras 3 distribution
    "JAX_PROCESS_ID",
)
_WORLD_VARS = (
    "WORLD_SIZE",
    "PMI_SIZE",
    "OMPI_COMM_WORLD_SIZE",
    "SLURM_NTASKS",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
)


def _from_env(names: tuple[str, ...], env: Mapping[str, str]) -> int | None:
    for name in names:
        value = env.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                continue
    return None


def global_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's global rank: torch.distributed when initialised, else the launcher's
    environment variables (torchrun, MPI, SLURM, Keras/JAX), else 0."""
    env = os.environ if env is None else env
    dist = sys.modules.get("torch.distributed")
    if dist is not None:
        try:
            if dist.is_available() and dist.is_initialized():
                return int(dist.get_rank())
        except Exception:
            pass
    rank = _from_env(_RANK_VARS, env)
    if rank is not None:
        return rank
    tf_config = env.get("TF_CONFIG")
    if tf_config:
        import json

        try:
            cfg = json.loads(tf_config)
            task = cfg.get("task", {})
            kind, index = task.get("type"), int(task.get("index", 0))
            if kind in ("chief", "master"):
                return 0
            # without a chief, worker 0 is the chief (TensorFlow's convention)
            has_chief = bool({"chief", "master"} & set(cfg.get("cluster", {})))
            return index + 1 if has_chief else index
        except (ValueError, AttributeError, TypeError):
            pass
    return 0


def world_size(env: Mapping[str, str] | None = None) -> int:
    """Number of processes in the run (1 when not distributed)."""
    env = os.environ if env is None else env
    dist = sys.modules.get("torch.distributed")
    if dist is not None:
        try:
            if dist.is_available() and dist.is_initialized():
                return int(dist.get_world_size())
        except Exception:
            pass
    return _from_env(_WORLD_VARS, env) or 1


def is_main_process(env: Mapping[str, str] | None = None) -> bool:
    """True on global rank 0 (or when not distributed)."""
    return global_rank(env) == 0


def rank_context(rank: int | None = None) -> str:
    """The context under which a rank's system metrics are sent: ``rank<N>``."""
    return f"rank{global_rank() if rank is None else rank}"


def broadcast_key(key: str | None) -> str | None:
    """Share rank 0's experiment key with every rank through torch.distributed, when it is
    initialised (a collective: every rank must call it). Otherwise returns ``key`` unchanged."""
    dist = sys.modules.get("torch.distributed")
    if dist is None:
        return key
    try:
        if not (dist.is_available() and dist.is_initialized()):
            return key
        box = [key]
        dist.broadcast_object_list(box, src=0)
        return box[0]
    except Exception:
        return key
