"""Cloud / cluster detection for ``write/experiment/cloud-details`` (WIRE #39).

Only environment variables are read: instance-metadata endpoints are network calls that can
hang for seconds off-cloud, and a training start must never wait on them. Variables whose name
looks secret (KEY, SECRET, TOKEN, PASSWORD, ...) are never included, nor are SageMaker's
hyperparameter blobs (user data that may hold credentials, and not a cloud detail).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

logger = logging.getLogger("comet_callbacks.capture")

_SECRET_MARKERS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH")
_EXCLUDED = ("SM_HPS", "SM_HP_", "SM_TRAINING_ENV", "SM_USER_ARGS", "SM_USER_ENTRY_POINT")
_MAX_VALUE_CHARS = 2048  # one runaway variable must not bloat the request


@dataclass(frozen=True)
class _Provider:
    """A provider: detected when any ``detect`` name/prefix matches; reports ``include``."""

    name: str
    detect: tuple[str, ...]  # exact names, or prefixes when ending in "_"
    include: tuple[str, ...]


# Most specific first: a SageMaker or Vertex job may also run on Kubernetes.
_PROVIDERS: tuple[_Provider, ...] = (
    _Provider(
        "AWS",
        detect=(
            "SM_",
            "TRAINING_JOB_NAME",
            "TRAINING_JOB_ARN",
            "AWS_EXECUTION_ENV",
            "AWS_BATCH_JOB_ID",
            "ECS_CONTAINER_METADATA_URI",
            "ECS_CONTAINER_METADATA_URI_V4",
            "AWS_REGION",
        ),
        include=(
            "SM_",
            "TRAINING_JOB_NAME",
            "TRAINING_JOB_ARN",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_EXECUTION_ENV",
            "AWS_BATCH_",
        ),
    ),
    _Provider(
        "GCP",
        detect=("AIP_", "CLOUD_ML_", "GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "CLOUD_RUN_JOB"),
        include=(
            "AIP_",
            "CLOUD_ML_",
            "GOOGLE_CLOUD_PROJECT",
            "GOOGLE_CLOUD_REGION",
            "GCLOUD_PROJECT",
            "CLOUD_RUN_JOB",
            "CLOUD_RUN_EXECUTION",
        ),
    ),
    _Provider("Azure", detect=("AZUREML_",), include=("AZUREML_",)),
    _Provider(
        "Kubernetes",
        detect=("KUBERNETES_SERVICE_HOST",),
        include=(
            "KUBERNETES_SERVICE_HOST",
            "KUBERNETES_SERVICE_PORT",
            "POD_NAME",
            "POD_NAMESPACE",
            "NODE_NAME",
            "HOSTNAME",
        ),
    ),
    _Provider("SLURM", detect=("SLURM_JOB_ID",), include=("SLURM_",)),
)


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(name.startswith(p) if p.endswith("_") else name == p for p in patterns)


def _is_safe(name: str) -> bool:
    upper = name.upper()
    return not any(m in upper for m in _SECRET_MARKERS) and not _matches(upper, _EXCLUDED)


def collect_cloud_details(
    environ: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, str]] | None:
    """``(provider, metadata)`` detected from environment variables, or None.

    ``metadata`` maps the provider's non-secret variables to their values. ``environ``
    defaults to ``os.environ`` (a parameter so callers and tests need not mutate it).
    """
    try:
        env = os.environ if environ is None else environ
        for provider in _PROVIDERS:
            if not any(_matches(name, provider.detect) and _is_safe(name) for name in env):
                continue
            metadata = {
                name: str(value)[:_MAX_VALUE_CHARS]
                for name, value in sorted(env.items())
                if _matches(name, provider.include) and _is_safe(name)
            }
            return provider.name, metadata
        return None
    except Exception as exc:
        logger.debug("cloud details skipped: %r", exc)
        return None
