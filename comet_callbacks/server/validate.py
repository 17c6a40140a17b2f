"""Declarative validation of request bodies and query strings (WIRE.md §1 encodings).

A *spec* maps a key to a type code; a key ending in ``?`` is optional. Codes:

* ``s`` string, ``i`` int64 (``3.0`` accepted), ``n`` number, ``b`` boolean,
  ``o`` object, ``j`` any JSON value, ``m`` metric value (number, numeric string,
  ``"NaN"``/``"Infinity"``/``"-Infinity"``), ``v`` string | number | boolean;
* ``[code]`` a list of that type; ``[{...}]`` a list of objects with a nested spec.

``null`` means "not given" and unknown keys are ignored. Every failure raises
:class:`ApiError` (400) whose message starts with the field name, as the contract
requires. The same specs produce the JSON Schema that ``/openapi.json`` shows.
"""

from __future__ import annotations

import math
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


class ApiError(Exception):
    """An error answered as ``{"msg", "code"}`` with HTTP status ``code``."""

    def __init__(self, code: int, msg: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.headers = headers or {}


Spec = dict[str, Any]


def bad(field: str, what: str) -> ApiError:
    """A 400 error whose message starts with ``field``."""
    return ApiError(400, f"{field}: {what}")


def _int(field: str, value: Any) -> int:
    if isinstance(value, bool):
        raise bad(field, "expected integer")
    if isinstance(value, int):
        out = value
    elif isinstance(value, float) and math.isfinite(value) and value == int(value):
        out = int(value)
    else:
        raise bad(field, "expected integer")
    if not INT64_MIN <= out <= INT64_MAX:
        raise bad(field, "integer out of int64 range")
    return out


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise bad(field, "expected number")
    return float(value)


_SPECIAL = {"nan": math.nan, "infinity": math.inf, "-infinity": -math.inf, "+infinity": math.inf}


def metric_value(field: str, value: Any) -> float:
    """Parse a metric value: a number, a numeric string, or NaN/Infinity/-Infinity."""
    if isinstance(value, bool):
        raise bad(field, "expected number or numeric string")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _SPECIAL:
            return _SPECIAL[text.lower()]
        try:
            return float(text)
        except ValueError:
            pass
    raise bad(field, "expected number or numeric string")


def check(field: str, code: Any, value: Any) -> Any:
    """Validate one value against a type code; return the normalised value."""
    if isinstance(code, list):
        if not isinstance(value, list):
            raise bad(field, "expected list")
        out = []
        for idx, item in enumerate(value):
            name = f"{field}[{idx}]"
            if item is None:
                raise bad(name, "must not be null")
            if isinstance(code[0], dict):
                if not isinstance(item, dict):
                    raise bad(name, "expected object")
                out.append(validate(code[0], item, prefix=name + "."))
            else:
                out.append(check(name, code[0], item))
        return out
    if code == "s":
        if not isinstance(value, str):
            raise bad(field, "expected string")
        return value
    if code == "i":
        return _int(field, value)
    if code == "n":
        return _number(field, value)
    if code == "b":
        if not isinstance(value, bool):
            raise bad(field, "expected boolean")
        return value
    if code == "o":
        if not isinstance(value, dict):
            raise bad(field, "expected object")
        return value
    if code == "m":
        return metric_value(field, value)
    if code == "v":
        if not isinstance(value, (str, int, float, bool)):
            raise bad(field, "expected string, number or boolean")
        return value
    if code == "j":
        return value
    raise AssertionError(f"unknown type code {code!r}")


def validate(spec: Spec, body: Any, prefix: str = "") -> dict[str, Any]:
    """Validate a JSON object against ``spec``; absent optional keys map to ``None``."""
    if not isinstance(body, dict):
        raise bad(prefix.rstrip(".") or "body", "expected JSON object")
    out: dict[str, Any] = {}
    for key, code in spec.items():
        optional = key.endswith("?")
        name = key.rstrip("?")
        value = body.get(name)
        if value is None:
            if not optional:
                raise bad(prefix + name, "required")
            out[name] = None
            continue
        out[name] = check(prefix + name, code, value)
    return out


def parse_bool(field: str, text: str) -> bool:
    """Query booleans: ``true``/``false`` in any letter case."""
    low = text.strip().lower()
    if low == "true":
        return True
    if low == "false":
        return False
    raise bad(field, "expected true or false")


def parse_query(spec: Spec, query: dict[str, str]) -> dict[str, Any]:
    """Validate query parameters (all strings on the wire) against ``spec``."""
    out: dict[str, Any] = {}
    for key, code in spec.items():
        optional = key.endswith("?")
        name = key.rstrip("?")
        raw = query.get(name)
        if raw is None or (raw == "" and code != "s"):
            if not optional:
                raise bad(name, "required")
            out[name] = None
            continue
        if code == "s":
            out[name] = raw
        elif code == "i":
            try:
                number = float(raw) if any(c in raw for c in ".eE") else int(raw)
            except ValueError:
                raise bad(name, "expected integer") from None
            out[name] = _int(name, number)
        elif code == "b":
            out[name] = parse_bool(name, raw)
        else:
            raise AssertionError(code)
    return out


def json_schema(code: Any) -> dict[str, Any]:
    """JSON Schema of a type code (for the OpenAPI document)."""
    if isinstance(code, dict):
        return {
            "type": "object",
            "properties": {k.rstrip("?"): json_schema(v) for k, v in code.items()},
            "required": [k for k in code if not k.endswith("?")],
        }
    if isinstance(code, list):
        return {"type": "array", "items": json_schema(code[0])}
    scalars: dict[str, dict[str, Any]] = {
        "s": {"type": "string"},
        "i": {"type": "integer", "format": "int64"},
        "n": {"type": "number"},
        "b": {"type": "boolean"},
        "o": {"type": "object"},
        "j": {},
        "m": {"anyOf": [{"type": "number"}, {"type": "string"}]},
        "v": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]},
    }
    return scalars[code]


def stored_text(number: float | None, value: Any) -> str:
    """A metric point's ``value_text`` column: ``""`` when its ``value`` column holds the
    number (every finite value: :func:`metric_text` makes the text of it when read),
    :func:`text_of` ``value`` otherwise (NaN and infinities, whose ``value`` is NULL).

    Storing ``""`` keeps a float's ``repr`` (about a sixth of the server's time per batched
    point) and its bytes off the write path; reads, far fewer, pay for it."""
    return "" if number is not None else text_of(value)


def metric_text(number: float | None, stored: str) -> str:
    """The text of a stored metric point (``value`` and ``value_text`` columns): the text as
    it was sent, :func:`text_of` a number (see :func:`stored_text`)."""
    return stored or text_of(number)


def text_of(value: Any) -> str:
    """The §4 "Text" form of a stored value."""
    import json

    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        if value == int(value) and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    return json.dumps(value, separators=(",", ":"), sort_keys=False)
