"""Settings: one value per field, resolved as explicit argument > environment > config file > default.

Environment variable names and config-file keys are the official Comet SDK's, so an existing
``COMET_API_KEY`` / ``.comet.config`` set-up works unchanged. Every invalid value raises
:class:`ConfigError` naming the setting, where the value came from and what is allowed.
The API key is never shown: ``repr(settings)`` and every message redact it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import CometCallbacksError

__all__ = [
    "ConfigError",
    "Settings",
    "FIELDS",
    "DEFAULT_ROOT",
    "redact",
    "register_secret",
    "scrub",
    "resolve_root",
]

DEFAULT_ROOT = "https://www.comet.com"
MODES = ("online", "offline", "disabled")
_TRUE = {"1", "true", "yes", "on", "y", "t"}
_FALSE = {"0", "false", "no", "off", "n", "f", ""}


class ConfigError(CometCallbacksError, ValueError):
    """An invalid configuration value: names the setting, its source and what is allowed."""

    def __init__(self, setting: str, source: str, value: Any, allowed: str) -> None:
        self.setting = setting
        self.source = source
        self.allowed = allowed
        shown = "<redacted>" if setting == "api_key" else repr(value)
        super().__init__(f"invalid {setting} = {shown} (from {source}): {allowed}")


# --------------------------------------------------------------------------- secrets

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Remember a secret so :func:`scrub` (and our log filter) removes it from any text."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)
            raw = value.split("*", 1)[0]
            if len(raw) >= 4:
                _secrets.add(raw)


def scrub(text: str) -> str:
    """Replace every registered secret in ``text`` with ``<redacted>``."""
    for s in sorted(_secrets, key=len, reverse=True):
        if s in text:
            text = text.replace(s, "<redacted>")
    return text


def redact(value: str | None) -> str | None:
    """How a secret is shown: never any of its characters."""
    return None if value is None else "<redacted>"


class _ScrubFilter(logging.Filter):
    """Removes registered secrets from every record of the ``comet_callbacks`` loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _secrets:
            try:
                msg = record.getMessage()
            except Exception:  # a broken format string: leave it to logging
                return True
            clean = scrub(msg)
            if clean != msg:
                record.msg, record.args = clean, None
        return True


_root_logger = logging.getLogger("comet_callbacks")
_root_logger.addFilter(_ScrubFilter())
_root_logger.addHandler(logging.NullHandler())


# --------------------------------------------------------------------------- parsers


def _parse_bool(v: str) -> bool:
    s = v.strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError("expected a boolean: true/false, 1/0, yes/no, on/off")


def _parse_float(v: str) -> float:
    try:
        f = float(v)
    except ValueError:
        raise ValueError("expected a number of seconds, e.g. 10 or 2.5") from None
    if not f > 0 or f != f or f == float("inf"):
        raise ValueError("expected a positive, finite number of seconds")
    return f


def _parse_int(v: str) -> int:
    try:
        i = int(v)
    except ValueError:
        raise ValueError("expected a positive integer") from None
    if i <= 0:
        raise ValueError("expected a positive integer")
    return i


def _parse_summary_level(v: str) -> int:
    """The SDK's ``display_summary_level``: 0 (nothing), 1 or 2 (the start and end lines)."""
    s = v.strip()
    if s not in ("0", "1", "2"):
        raise ValueError("expected 0 (print no link or summary), 1 or 2")
    return int(s)


def _parse_mode(v: str) -> str:
    s = v.strip().lower()
    if s not in MODES:
        raise ValueError("expected one of: online, offline, disabled")
    return s


def _parse_url(v: str) -> str:
    s = v.strip()
    parts = urlsplit(s)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(
            "expected an http:// or https:// URL with a host, e.g. http://127.0.0.1:8080"
        )
    return s


def _parse_str(v: str) -> str:
    return v.strip()


def _parse_log_model(v: str) -> str | bool:
    s = v.strip().lower()
    if s in ("all", "best", "last"):
        return s
    try:
        return _parse_bool(s)
    except ValueError:
        raise ValueError("expected false, true, best, last or all") from None


@dataclass(frozen=True)
class _Field:
    name: str
    env: str
    parse: Callable[[str], Any]
    default: Any
    help: str
    section: str = "comet"
    key: str = ""

    def file_key(self) -> tuple[str, str]:
        return self.section, (self.key or self.name)


def _auto(name: str, help: str, default: bool = True) -> _Field:
    return _Field(
        f"auto_log_{name}",
        f"COMET_AUTO_LOG_{name.upper()}",
        _parse_bool,
        default,
        help,
        section="comet_auto_log",
        key=name,
    )


#: Every setting we read: attribute, environment variable, parser, default, meaning.
FIELDS: tuple[_Field, ...] = (
    _Field("api_key", "COMET_API_KEY", _parse_str, None, "API key sent in `Authorization`."),
    _Field(
        "workspace",
        "COMET_WORKSPACE",
        _parse_str,
        None,
        "Workspace; default: the key's default workspace.",
    ),
    _Field("project_name", "COMET_PROJECT_NAME", _parse_str, None, "Project; default: `general`."),
    _Field(
        "experiment_name", "COMET_EXPERIMENT_NAME", _parse_str, None, "Name of a new experiment."
    ),
    _Field(
        "experiment_key",
        "COMET_EXPERIMENT_KEY",
        _parse_str,
        None,
        "Continue this existing experiment.",
    ),
    _Field(
        "url_override",
        "COMET_URL_OVERRIDE",
        _parse_url,
        None,
        "Server root (or SDK-style `.../clientlib/`).",
    ),
    _Field(
        "offline_directory",
        "COMET_OFFLINE_DIRECTORY",
        _parse_str,
        ".cometcallbacks",
        "Where offline runs and undelivered events are kept.",
    ),
    _Field(
        "timeout_api",
        "COMET_TIMEOUT_API",
        _parse_float,
        10.0,
        "Seconds per REST call.",
        section="comet_timeout",
        key="api",
    ),
    _Field(
        "timeout_cleaning",
        "COMET_TIMEOUT_CLEANING",
        _parse_float,
        30.0,
        "Seconds `end()` waits for delivery.",
        section="comet_timeout",
        key="cleaning",
    ),
    _Field(
        "timeout_upload",
        "COMET_TIMEOUT_UPLOAD",
        _parse_float,
        900.0,
        "Seconds to read an upload's answer.",
        section="comet_timeout",
        key="upload",
    ),
    _Field(
        "mode",
        "COMET_MODE",
        _parse_mode,
        None,
        "`online`, `offline` or `disabled`; default online when a key or URL is set.",
    ),
    _Field(
        "start_online",
        "COMET_START_ONLINE",
        _parse_bool,
        None,
        "`false` means offline (SDK compatibility).",
    ),
    _Field(
        "strict",
        "COMET_STRICT",
        _parse_bool,
        False,
        "Raise logging errors instead of reporting them.",
    ),
    _Field(
        "model_registry_name",
        "COMET_MODEL_REGISTRY_NAME",
        _parse_str,
        None,
        "Register the final model under this name.",
    ),
    _Field(
        "log_model",
        "COMET_LOG_MODEL",
        _parse_log_model,
        True,
        "Model logged at the end: false, true (best, else final), best, last (final), all.",
    ),
    _Field(
        "max_queue_size",
        "COMET_MAX_QUEUE_SIZE",
        _parse_int,
        100_000,
        "Events kept in memory before spilling to disk.",
    ),
    _Field("workers", "COMET_SENDER_WORKERS", _parse_int, 4, "Requests in flight at once."),
    _Field(
        "batch",
        "COMET_BATCH",
        _parse_bool,
        True,
        "Send metrics and parameters in batches; `false`: one request per value.",
    ),
    _Field(
        "cpu_monitor_interval",
        "COMET_CPU_MONITOR_INTERVAL",
        _parse_float,
        None,
        "Seconds between CPU/RAM samples (default: server's).",
    ),
    _Field(
        "gpu_monitor_interval",
        "COMET_GPU_MONITOR_INTERVAL",
        _parse_float,
        None,
        "Seconds between GPU samples (default: server's).",
    ),
    _Field(
        "background_upload",
        "COMET_BACKGROUND_UPLOAD",
        _parse_bool,
        False,
        "At the end, hand undelivered events to a background `comet-callbacks upload` process instead of waiting.",
    ),
    _Field(
        "distributed_system_metrics",
        "COMET_DISTRIBUTED_SYSTEM_METRICS",
        _parse_bool,
        False,
        "Non-zero ranks send their system metrics (context `rank<N>`).",
    ),
    _Field(
        "display_summary_level",
        "COMET_DISPLAY_SUMMARY_LEVEL",
        _parse_summary_level,
        1,
        "`0`: print neither the experiment link at start nor the summary line at the end.",
    ),
    _auto("code", "Capture the entry script's source."),
    _auto("git_metadata", "Capture git metadata."),
    _auto("git_patch", "Capture the uncommitted git patch."),
    _auto("env_details", "Capture system details and installed packages."),
    _auto("env_host", "Capture host name and IPs."),
    _auto("env_cpu", "Capture CPU/RAM/load metrics."),
    _auto("env_gpu", "Capture GPU metrics (needs nvidia-ml-py)."),
    _auto("output_logger", "Capture stdout/stderr."),
    _auto("metrics", "Log metrics from integrations."),
    _auto("parameters", "Log parameters from integrations."),
    _auto("graph", "Log the model graph."),
    _auto("disable", "Disable everything (mode `disabled`).", default=False),
)
_BY_NAME = {f.name: f for f in FIELDS}


def _config_paths(env: Mapping[str, str]) -> list[str]:
    paths = []
    if env.get("COMET_CONFIG"):
        paths.append(os.path.expanduser(env["COMET_CONFIG"]))
    paths.append(os.path.join(os.getcwd(), ".comet.config"))
    paths.append(os.path.expanduser("~/.comet.config"))
    return paths


def _read_config_file(path: str, required: bool) -> tuple[dict[tuple[str, str], str], dict]:
    """Read one INI file; returns values by (section, key) and the line of each key."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except FileNotFoundError:
        if required:
            raise ConfigError(
                "COMET_CONFIG", "environment variable COMET_CONFIG", path, "file does not exist"
            ) from None
        return {}, {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            "config file", path, path, f"cannot be read: {exc.__class__.__name__}"
        ) from None
    import configparser  # only when a config file exists: keeps `import comet_callbacks` cheap

    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as exc:
        raise ConfigError(
            "config file", path, path, f"is not a valid INI file: {str(exc).splitlines()[0]}"
        ) from None
    values: dict[tuple[str, str], str] = {}
    for section in parser.sections():
        for key, value in parser.items(section):
            values[(section.lower(), key.lower())] = value
    # Line numbers for error messages (configparser does not keep them).
    lines: dict[tuple[str, str], int] = {}
    section = ""
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if s.startswith("[") and s.endswith("]"):
            section = s[1:-1].strip().lower()
        elif not s.startswith(("#", ";")) and ("=" in s or ":" in s):
            # configparser's delimiters are "=" and ":"; the first one on the line splits.
            cut = min(i for i in (s.find("="), s.find(":")) if i >= 0)
            lines.setdefault((section, s[:cut].strip().lower()), no)
    return values, lines


def _decode_key_payload(api_key: str) -> dict | None:
    if "*" not in api_key:
        return None
    payload = api_key.split("*", 1)[1].strip()
    payload = payload.replace("-", "+").replace("_", "/")
    payload += "=" * (-len(payload) % 4)
    try:
        obj = json.loads(base64.b64decode(payload, validate=False).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def resolve_root(url_override: str | None, api_key: str | None) -> str:
    """The server root ``scheme://host[:port]`` per WIRE.md §1 (override > key payload > default)."""
    if url_override:
        parts = urlsplit(url_override.strip())
        return f"{parts.scheme}://{parts.netloc}"
    if api_key:
        obj = _decode_key_payload(api_key)
        base = obj.get("baseUrl") if obj else None
        if isinstance(base, str):
            parts = urlsplit(base.strip())
            if parts.scheme in ("http", "https") and parts.netloc:
                return f"{parts.scheme}://{parts.netloc}"
    return DEFAULT_ROOT


class Settings:
    """Resolved configuration: one typed attribute per entry of :data:`FIELDS` (a misspelt
    setting fails at type-check time, and with ``AttributeError`` at run time), plus
    ``values`` (by name) and ``sources`` (where each value came from). Build with
    :meth:`Settings.resolve`; derive with :meth:`replace`."""

    values: dict[str, Any]
    sources: dict[str, str]
    # One annotation per field of FIELDS, same order (tests/test_config.py keeps them in step).
    api_key: str | None
    workspace: str | None
    project_name: str | None
    experiment_name: str | None
    experiment_key: str | None
    url_override: str | None
    offline_directory: str
    timeout_api: float
    timeout_cleaning: float
    timeout_upload: float
    mode: str | None
    start_online: bool | None
    strict: bool
    model_registry_name: str | None
    log_model: bool | str
    max_queue_size: int
    workers: int
    batch: bool
    cpu_monitor_interval: float | None
    gpu_monitor_interval: float | None
    background_upload: bool
    distributed_system_metrics: bool
    display_summary_level: int
    auto_log_code: bool
    auto_log_git_metadata: bool
    auto_log_git_patch: bool
    auto_log_env_details: bool
    auto_log_env_host: bool
    auto_log_env_cpu: bool
    auto_log_env_gpu: bool
    auto_log_output_logger: bool
    auto_log_metrics: bool
    auto_log_parameters: bool
    auto_log_graph: bool
    auto_log_disable: bool

    def __init__(self, values: dict[str, Any], sources: dict[str, str] | None = None) -> None:
        self.__dict__.update(values)
        self.values = values
        self.sources = {} if sources is None else sources

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Settings):
            return NotImplemented
        return (self.values, self.sources) == (other.values, other.sources)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaces

    @classmethod
    def resolve(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Resolve every field: explicit ``overrides`` > ``env`` (default ``os.environ``) > config file > default."""
        env = os.environ if env is None else env
        unknown = set(overrides) - set(_BY_NAME)
        if unknown:
            raise TypeError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        file_values: dict[tuple[str, str], tuple[str, str]] = {}  # (section,key) -> (value, source)
        for i, path in enumerate(_config_paths(env)):
            required = i == 0 and bool(env.get("COMET_CONFIG"))
            vals, lines = _read_config_file(path, required)
            for k, v in vals.items():
                file_values.setdefault(k, (v, f"{path}, line {lines.get(k, '?')}"))
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for f in FIELDS:
            if f.name in overrides and overrides[f.name] is not None:
                raw, source = overrides[f.name], "argument"
                if isinstance(raw, str):
                    values[f.name] = _parse(f, raw, source)
                elif (
                    f.parse is _parse_float
                    and isinstance(raw, (int, float))
                    and not isinstance(raw, bool)
                ):
                    values[f.name] = _parse(f, str(raw), source)
                elif f.parse is _parse_int and isinstance(raw, int) and not isinstance(raw, bool):
                    values[f.name] = _parse(f, str(raw), source)
                else:
                    values[f.name] = raw
                sources[f.name] = source
                continue
            if env.get(f.env) not in (None, ""):
                values[f.name] = _parse(f, env[f.env], f"environment variable {f.env}")
                sources[f.name] = f"environment variable {f.env}"
                continue
            fk = f.file_key()
            hit = file_values.get(fk)
            if hit is None and f.section == "comet_timeout":
                hit = file_values.get(("comet", f.name))
            if hit is not None and hit[0] != "":
                values[f.name] = _parse(f, hit[0], f"config file {hit[1]} ([{fk[0]}] {fk[1]})")
                sources[f.name] = f"config file {hit[1]}"
                continue
            values[f.name] = f.default
            sources[f.name] = "default"
        register_secret(values.get("api_key"))
        return cls(values, sources)

    # ------------------------------------------------------------------ derived values

    @property
    def effective_mode(self) -> str:
        """online / offline / disabled, after the SDK-compatible switches and defaults."""
        if self.values.get("auto_log_disable"):
            return "disabled"
        if self.values.get("mode"):
            return self.values["mode"]
        if self.values.get("start_online") is False:
            return "offline"
        if self.values.get("api_key") or self.values.get("url_override"):
            return "online"
        return "offline"

    @property
    def root(self) -> str:
        """Server root per WIRE.md §1."""
        return resolve_root(self.values.get("url_override"), self.values.get("api_key"))

    def replace(self, **overrides: Any) -> Settings:
        """A copy with some values replaced (already-parsed values)."""
        values = dict(self.values)
        sources = dict(self.sources)
        for k, v in overrides.items():
            if k not in _BY_NAME:
                raise TypeError(f"unknown setting: {k}")
            values[k] = v
            sources[k] = "argument"
        register_secret(values.get("api_key"))
        return Settings(values, sources)

    def __repr__(self) -> str:
        shown = {k: (redact(v) if k == "api_key" else v) for k, v in self.values.items()}
        inner = ", ".join(f"{k}={v!r}" for k, v in shown.items())
        return f"Settings({inner})"

    __str__ = __repr__


def _parse(f: _Field, raw: str, source: str) -> Any:
    try:
        return f.parse(raw)
    except ValueError as exc:
        raise ConfigError(f.name, source, raw, str(exc)) from None
