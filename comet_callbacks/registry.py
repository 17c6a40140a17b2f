"""Model registry: register a logged experiment model, and manage registry models.

Flow (WIRE.md §5 "Log model → register"): the model's files were uploaded as
``model-element`` assets grouped by the model name; ``GET experiment/model`` gives the
``experimentModelId``; the registry name is normalised; ``GET registry-model`` tells whether
to create the registry model (#15) or add a version (#16).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from .rest.client import RestClient
from .rest.errors import ConflictError, ForbiddenError

__all__ = ["RegistryError", "normalize_registry_name", "next_version", "register", "parse_semver"]

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


class RegistryError(RuntimeError):
    """A model could not be registered; the message says why and what to do."""


def normalize_registry_name(name: str) -> str:
    """Lowercase; runs of characters outside ``[a-z0-9]`` become one ``-``; trim ``-``.

    >>> normalize_registry_name("My Model_v2!")
    'my-model-v2'
    """
    out = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if not out:
        raise RegistryError(f"registry name {name!r} has no letters or digits")
    return out


def parse_semver(version: str) -> tuple[int, int, int, str | None]:
    """``(major, minor, patch, prerelease)``; RegistryError for anything that is not SemVer 2.0.0."""
    m = _SEMVER.match(version) if isinstance(version, str) else None
    if not m:
        raise RegistryError(f"version {version!r} is not a SemVer 2.0.0 version such as '1.2.3'")
    return int(m.group(1)), int(m.group(2)), int(m.group(3)), m.group(4)


def next_version(existing: Sequence[str]) -> str:
    """The next patch version after the highest release in ``existing`` (first: ``1.0.0``)."""
    best: tuple[int, int, int] | None = None
    for v in existing:
        try:
            major, minor, patch, _ = parse_semver(v)
        except RegistryError:
            continue
        if best is None or (major, minor, patch) > best:
            best = (major, minor, patch)
    if best is None:
        return "1.0.0"
    return f"{best[0]}.{best[1]}.{best[2] + 1}"


def register(
    client: RestClient,
    workspace: str,
    experiment_key: str,
    *,
    model_name: str,
    version: str | None = None,
    registry_name: str | None = None,
    description: str | None = None,
    public: bool = False,
    comment: str | None = None,
    stages: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Register the experiment model ``model_name``; returns ids and the version used."""
    if version is not None:
        parse_semver(version)
    models = client.get_experiment_models(experiment_key).get("models") or []
    match = [m for m in models if m.get("modelName") == model_name]
    if not match:
        raise RegistryError(
            f"experiment {experiment_key} has no model named {model_name!r} on the server "
            "(was log_model called, and did its upload succeed?)"
        )
    experiment_model_id = match[0]["experimentModelId"]
    reg_name = normalize_registry_name(registry_name or model_name)
    try:
        existing = client.get_registry_models(workspace).get("registryModels") or []
    except ForbiddenError:
        raise RegistryError(
            f"the API key may not use workspace {workspace!r}'s model registry (403)"
        ) from None
    exists = any(m.get("modelName") == reg_name for m in existing)
    if version is None:
        versions: list[str] = []
        if exists:
            details = client.get_registry_model_details(workspace, reg_name)
            versions = [v.get("version", "") for v in details.get("versions") or []]
        version = next_version(versions)
    try:
        if exists:
            res = client.create_registry_model_version(
                experiment_model_id, reg_name, version, comment=comment, stages=stages
            )
        else:
            res = client.create_registry_model(
                experiment_model_id,
                reg_name,
                version,
                description=description,
                is_public=public,
                comment=comment,
                stages=stages,
            )
    except ConflictError:
        raise RegistryError(
            f"version {version} of registry model {reg_name!r} already exists (409): pick another version"
        ) from None
    return {
        "registry_model_id": res.get("registryModelId"),
        "item_id": res.get("registryModelItemId"),
        "version": version,
        "registry_name": reg_name,
        "workspace": workspace,
        "experiment_model_id": experiment_model_id,
    }
