"""Turning user values into what the wire carries, never silently wrong.

* metric values: real numbers (``int``/``float``, numpy/torch/jax scalars and one-element
  tensors, ``Decimal``, numeric strings, booleans as 0/1); anything else is rejected with a
  message naming the value. numpy/torch are never imported here: their scalars are recognised
  by their ``item()`` method.
* parameters: nested mappings, dataclasses, ``argparse.Namespace`` and objects such as
  OmegaConf configs are flattened with ``|`` (WIRE.md §1); cycles and excessive depth are cut
  with a marker; non-JSON values become their ``str``; over-long strings are truncated with a
  marker.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

__all__ = [
    "MAX_NAME",
    "MAX_TEXT",
    "to_metric_value",
    "flatten_params",
    "json_safe",
    "truncate",
    "check_name",
    "check_step",
]

MAX_NAME = 1000
MAX_TEXT = 100_000
MAX_DEPTH = 20
INT64_MAX = 2**63 - 1


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with a visible marker saying how much was cut."""
    if len(text) <= limit:
        return text
    marker = f"…[truncated {len(text) - limit} chars]"
    return text[: max(0, limit - len(marker))] + marker


def check_name(name: Any, what: str = "name") -> str:
    """A metric/parameter name: a non-empty string (truncated with a marker when huge)."""
    if not isinstance(name, str):
        raise ValueError(f"{what} must be a string, got {type(name).__name__}: {_short(name)}")
    if not name:
        raise ValueError(f"{what} must not be empty")
    return truncate(name, MAX_NAME)


def check_step(value: Any, what: str = "step") -> int | None:
    """``None`` or a non-negative integer (integral floats and numpy ints accepted)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a non-negative integer, got bool {value!r}")
    if not isinstance(value, int):
        item = getattr(value, "item", None)
        if callable(item) and not isinstance(value, (str, bytes)):
            try:
                value = item()
            except Exception:
                raise ValueError(
                    f"{what} must be a non-negative integer, got {_short(value)}"
                ) from None
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(
                f"{what} must be a non-negative integer, got {type(value).__name__}: {_short(value)}"
            )
    if value < 0:
        raise ValueError(f"{what} must be a non-negative integer, got {value}")
    if value > INT64_MAX:
        raise ValueError(f"{what} must fit in 64 bits, got {value}")
    return value


def to_metric_value(value: Any, name: str = "value") -> float | int:
    """A metric value as a Python number. Raises ``ValueError`` naming the metric otherwise."""
    t = type(value)
    if t is float or t is int:
        return value
    if t is bool:
        return int(value)
    if isinstance(value, (int, float)):  # subclasses (IntEnum, numpy.float64 is a float subclass)
        return float(value) if isinstance(value, float) else int(value)
    if isinstance(value, (Decimal, Fraction)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"metric {name!r}: value {_short(value)} is not a number") from None
    if value is None:
        raise ValueError(f"metric {name!r}: value is None, expected a number")
    item = getattr(value, "item", None)
    if callable(item):  # numpy / torch / jax scalars and one-element arrays
        numel = _numel(value)
        if numel is not None and numel != 1:
            raise ValueError(
                f"metric {name!r}: expected a scalar, got a tensor/array with {numel} elements"
            )
        try:
            v = item()
        except Exception as exc:
            raise ValueError(f"metric {name!r}: cannot read value {_short(value)}: {exc}") from None
        if isinstance(v, bool):
            return int(v)
        if isinstance(v, (int, float)):
            return v
        if isinstance(v, complex):
            raise ValueError(f"metric {name!r}: complex value {v!r} is not a real number")
    raise ValueError(
        f"metric {name!r}: value of type {type(value).__name__} is not a number: {_short(value)}"
    )


def _numel(value: Any) -> int | None:
    size = getattr(value, "size", None)
    if isinstance(size, int):  # numpy
        return size
    numel = getattr(value, "numel", None)
    if callable(numel):  # torch
        try:
            return int(numel())
        except Exception:
            return None
    return None


def json_safe(value: Any, _depth: int = 0, _seen: set[int] | None = None) -> Any:
    """A JSON-encodable version of ``value`` (non-finite floats as strings, unknowns as str)."""
    if value is None or isinstance(value, (bool, int)):
        return value if type(value) in (bool, int) or value is None else int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return truncate(value, MAX_TEXT)
    if isinstance(value, (Decimal, Fraction)):
        return json_safe(float(value))
    if _depth > MAX_DEPTH:
        return "<max depth>"
    seen = _seen if _seen is not None else set()
    if isinstance(value, (list, tuple, set, frozenset)):
        if id(value) in seen:
            return "<cycle>"
        seen.add(id(value))
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        out = [json_safe(v, _depth + 1, seen) for v in items]
        seen.discard(id(value))
        return out
    if isinstance(value, Mapping):
        if id(value) in seen:
            return "<cycle>"
        seen.add(id(value))
        out_d = {str(k): json_safe(v, _depth + 1, seen) for k, v in value.items()}
        seen.discard(id(value))
        return out_d
    item = getattr(value, "item", None)
    if callable(item) and _numel(value) in (None, 1):
        try:
            return json_safe(item(), _depth + 1, seen)
        except Exception:
            pass
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        try:
            return json_safe(tolist(), _depth + 1, seen)
        except Exception:
            pass
    return truncate(_safe_str(value), MAX_TEXT)


def _as_mapping(value: Any) -> Mapping[str, Any] | None:
    """The mapping view of a structured object, or None for a leaf."""
    if isinstance(value, Mapping):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if type(value).__name__ == "Namespace" and hasattr(value, "__dict__"):
        return vars(value)
    # OmegaConf DictConfig and other mapping-likes without the ABC
    keys, getitem = getattr(value, "keys", None), getattr(value, "__getitem__", None)
    if callable(keys) and callable(getitem) and not isinstance(value, (str, bytes)):
        try:
            return {k: value[k] for k in keys()}
        except Exception:
            return None
    return None


def flatten_params(params: Any, prefix: str = "", sep: str = "|") -> tuple[dict[str, Any], bool]:
    """Flatten nested parameters; returns ``(flat dict, whether anything was nested)``.

    >>> flatten_params({"opt": {"lr": 0.1}, "epochs": 3})
    ({'opt|lr': 0.1, 'epochs': 3}, True)
    """
    mapping = _as_mapping(params)
    if mapping is None:
        raise ValueError(
            f"parameters must be a mapping, dataclass or Namespace, got {type(params).__name__}"
        )
    out: dict[str, Any] = {}
    nested = False

    def walk(m: Mapping[str, Any], pre: str, depth: int, seen: set[int]) -> None:
        nonlocal nested
        if id(m) in seen:
            out[pre.rstrip(sep) or "<root>"] = "<cycle>"
            return
        seen = seen | {id(m)}
        for k, v in m.items():
            key = truncate(f"{pre}{k}", MAX_NAME)
            sub = _as_mapping(v) if not isinstance(v, (str, bytes, int, float)) else None
            if sub is not None and len(sub) > 0 and depth < MAX_DEPTH:
                nested = True
                walk(sub, key + sep, depth + 1, seen)
            elif sub is not None and id(v) in seen:
                out[key] = "<cycle>"
            else:
                out[key] = json_safe(v if sub is None else dict(sub))

    walk(mapping, prefix, 0, set())
    return out, nested


def _safe_str(value: Any) -> str:
    try:
        return str(value)
    except Exception:
        return f"<unprintable {type(value).__name__}>"


def _short(value: Any) -> str:
    """A short, never-raising description of a user value for error messages."""
    try:
        text = repr(value)
    except Exception:
        text = f"<unprintable {type(value).__name__}>"
    return truncate(text, 80)
