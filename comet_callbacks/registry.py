"""Model registry: register a logged experiment model, and manage registry models.

Flow (WIRE.md §5 "Log model → register"): the model's files were uploaded as
``model-element`` assets grouped by the model name; ``GET experiment/model`` gives the
``experimentModelId``; the registry name is normalised; ``GET registry-model`` tells whether
to create the registry model (#15) or add a version (#16).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .config import Settings
from .errors import CometCallbacksError
from .rest.call import Call
from .rest.errors import CometAPIError, ConflictError, ForbiddenError, NotFoundError

if TYPE_CHECKING:  # requests is imported only when a client is built
    from .rest.client import RestClient

__all__ = [
    "Registry",
    "RegistryError",
    "normalize_registry_name",
    "next_version",
    "register",
    "parse_semver",
]

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)


class RegistryError(CometCallbacksError, RuntimeError):
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
    except ForbiddenError:
        raise RegistryError(
            f"the API key may not register models in workspace {workspace!r} (403)"
        ) from None
    return {
        "registry_model_id": res.get("registryModelId"),
        "item_id": res.get("registryModelItemId"),
        "version": version,
        "registry_name": reg_name,
        "workspace": workspace,
        "experiment_model_id": experiment_model_id,
    }


# --------------------------------------------------------------------------- management


class Registry:
    """Manage one workspace's model registry by *names*: ids are looked up for you.

    >>> reg = Registry.from_settings()                              # doctest: +SKIP
    >>> reg.add_stage("my-model", "1.0.1", "production")            # doctest: +SKIP

    Every method reads the registry (``GET registry-model/details``) to resolve the registry
    model id or version item id, then calls the typed :class:`RestClient` method of the write
    endpoint. Failures raise :class:`RegistryError` naming the model and version: not found
    (404), a name or version that already exists (409), a workspace the key may not use (403).
    Names are normalised like the server does (``My Model_v2!`` → ``my-model-v2``).
    """

    def __init__(self, client: RestClient, workspace: str, *, _owns_client: bool = False) -> None:
        if not workspace:
            raise RegistryError("Registry needs a workspace name")
        self.client = client
        self.workspace = workspace
        self._owns_client = _owns_client

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Registry:
        """A registry for the configured server and key; the workspace is ``COMET_WORKSPACE``,
        else the key's default workspace. The returned object owns its client (``close()``)."""
        settings = settings or Settings.resolve()
        from .rest.client import RestClient

        client = RestClient.from_settings(settings)
        workspace = settings.workspace
        if not workspace:
            try:
                workspace = client.get_account_details()["defaultWorkspaceName"]
            except (CometAPIError, KeyError, TypeError) as exc:
                client.close()
                raise RegistryError(
                    f"could not find the API key's default workspace: {exc}"
                ) from None
        return cls(client, workspace, _owns_client=True)

    def close(self) -> None:
        """Close the client if this object created it."""
        if self._owns_client:
            self.client.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry(workspace={self.workspace!r}, root={self.client.root!r})"

    # ------------------------------------------------------------------ plumbing

    def _error(self, exc: CometAPIError, what: str) -> RegistryError:
        """Turn a REST error into a RegistryError that says which model/version and why."""
        if isinstance(exc, NotFoundError):
            return RegistryError(f"{what} not found in workspace {self.workspace!r} (404)")
        if isinstance(exc, ForbiddenError):
            return RegistryError(
                f"{what}: the API key may not use workspace {self.workspace!r}'s model registry (403)"
            )
        if isinstance(exc, ConflictError):
            return RegistryError(f"{what}: conflict (409): {exc.server_message or exc}")
        return RegistryError(f"{what}: {exc}")

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except CometAPIError as exc:
            raise self._error(exc, what) from None

    def _version(self, name: str, version: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(details, version entry)`` of ``name``/``version``; RegistryError if unknown."""
        details = self.get(name)
        for v in details.get("versions") or []:
            if v.get("version") == version:
                return details, v
        known = ", ".join(str(v.get("version")) for v in details.get("versions") or []) or "none"
        raise RegistryError(
            f"registry model {details.get('modelName', name)!r} has no version {version!r} "
            f"in workspace {self.workspace!r} (versions: {known})"
        )

    # ------------------------------------------------------------------ reads

    def list(self) -> list[dict[str, Any]]:
        """The workspace's registry models (``registryModelId``, ``modelName``, ...)."""
        res = self._call(
            f"registry of workspace {self.workspace!r}",
            self.client.get_registry_models,
            self.workspace,
        )
        return list((res or {}).get("registryModels") or [])

    def get(self, name: str) -> dict[str, Any]:
        """Details of registry model ``name`` with its ``versions`` (stages, comment, model)."""
        reg = normalize_registry_name(name)
        return self._call(
            f"registry model {reg!r}", self.client.get_registry_model_details, self.workspace, reg
        )

    def get_notes(self, name: str) -> str:
        """The notes of registry model ``name`` (``""`` when unset)."""
        reg = normalize_registry_name(name)
        # no typed RestClient method for this read: send the Call directly
        call = Call(
            "GET", "registry-model/notes", {"workspaceName": self.workspace, "modelName": reg}
        )
        res = self._call(f"registry model {reg!r}", self.client.send, call)
        return str((res or {}).get("notes") or "")

    # ------------------------------------------------------------------ versions

    def update_version(
        self,
        name: str,
        version: str,
        comment: str | None = None,
        stages: Sequence[str] | None = None,
    ) -> None:
        """Set a version's comment and/or replace its stages (``None`` leaves a field as is)."""
        _, v = self._version(name, version)
        self._call(
            f"version {version} of registry model {name!r}",
            self.client.update_registry_model_version,
            v["registryModelItemId"],
            comment=comment,
            stages=list(stages) if stages is not None else None,
        )

    def add_stage(self, name: str, version: str, stage: str) -> None:
        """Add ``stage`` (e.g. ``production``) to a version; webhooks are notified."""
        _, v = self._version(name, version)
        self._call(
            f"version {version} of registry model {name!r}",
            self.client.add_registry_model_version_stage,
            v["registryModelItemId"],
            stage,
        )

    def remove_stage(self, name: str, version: str, stage: str) -> None:
        """Remove ``stage`` from a version; webhooks are notified."""
        _, v = self._version(name, version)
        if stage not in (v.get("stages") or []):
            raise RegistryError(
                f"version {version} of registry model {name!r} has no stage {stage!r} "
                f"(stages: {', '.join(v.get('stages') or []) or 'none'})"
            )
        self._call(
            f"version {version} of registry model {name!r}",
            self.client.delete_registry_model_version_stage,
            v["registryModelItemId"],
            stage,
        )

    def delete_version(self, name: str, version: str) -> None:
        """Delete one version (the registry model stays)."""
        _, v = self._version(name, version)
        self._call(
            f"version {version} of registry model {name!r}",
            self.client.delete_registry_model_version,
            v["registryModelItemId"],
        )

    # ------------------------------------------------------------------ models

    def update_model(
        self,
        name: str,
        new_name: str | None = None,
        description: str | None = None,
        public: bool | None = None,
    ) -> None:
        """Rename (normalised), describe or publish a registry model."""
        details = self.get(name)
        self._call(
            f"registry model {details.get('modelName', name)!r}",
            self.client.update_registry_model,
            details["registryModelId"],
            registry_model_name=normalize_registry_name(new_name) if new_name else None,
            description=description,
            is_public=public,
        )

    def set_notes(self, name: str, notes: str) -> None:
        """Replace the notes of registry model ``name``."""
        reg = normalize_registry_name(name)
        self._call(
            f"registry model {reg!r}",
            self.client.set_registry_model_notes,
            self.workspace,
            reg,
            notes,
        )

    def delete_model(self, name: str) -> None:
        """Delete registry model ``name`` with all its versions."""
        reg = normalize_registry_name(name)
        self._call(
            f"registry model {reg!r}", self.client.delete_registry_model, self.workspace, reg
        )

    # ------------------------------------------------------------------ webhooks

    def set_webhooks(
        self,
        urls_or_configs: str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]],
        model_name: str | None = None,
        replace: bool = False,
    ) -> None:
        """Configure webhooks called when a version's stages change.

        ``urls_or_configs``: a URL, ``{"url": ..., "header": {...}}``, a list of those (for
        this workspace, and only model ``model_name`` when given), or full ``webhookConfigs``
        entries (dicts with ``webhookUrls``; ``workspaceName`` defaults to this workspace).
        ``replace=False`` merges into the stored configuration (POST); ``True`` replaces this
        workspace's configuration (PUT).
        """
        items: list[Any] = (
            [urls_or_configs]
            if isinstance(urls_or_configs, (str, Mapping))
            else list(urls_or_configs)
        )
        configs: list[dict[str, Any]] = []
        urls: list[dict[str, Any]] = []
        for item in items:
            if isinstance(item, str):
                urls.append({"url": item})
            elif isinstance(item, Mapping) and "webhookUrls" in item:
                cfg = dict(item)
                cfg.setdefault("workspaceName", self.workspace)
                if cfg.get("modelName"):
                    cfg["modelName"] = normalize_registry_name(cfg["modelName"])
                configs.append(cfg)
            elif isinstance(item, Mapping) and "url" in item:
                entry = {"url": item["url"]}
                if item.get("header"):
                    entry["header"] = {str(k): str(v) for k, v in item["header"].items()}
                urls.append(entry)
            else:
                raise RegistryError(
                    f"webhook {item!r}: expected a URL, {{'url': ..., 'header': {{...}}}} "
                    "or a webhookConfigs entry"
                )
        if urls:
            cfg = {"workspaceName": self.workspace, "webhookUrls": urls}
            if model_name:
                cfg["modelName"] = normalize_registry_name(model_name)
            configs.append(cfg)
        if not configs:
            raise RegistryError("set_webhooks needs at least one URL")
        fn = self.client.replace_webhooks if replace else self.client.update_webhooks
        self._call(f"webhooks of workspace {self.workspace!r}", fn, configs)
