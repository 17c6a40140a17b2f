"""Bad input to the client: logged correctly (checked on the server) or rejected with a clear
message; never an exception into the caller unless strict mode, which raises ValueError."""

from __future__ import annotations

import dataclasses
import decimal
import logging
import math
from typing import Any

import numpy as np
import pytest
import torch
from quiet import quiet

from comet_callbacks import Experiment
from comet_callbacks.server.embedded import ServerHandle
from comet_callbacks.server.reader import Reader

pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

QUIET: dict[str, Any] = quiet()


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no str for you")

    __repr__ = __str__


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


# metric name -> (value, stored text or None when it must be rejected, words the message has)
METRICS: dict[str, tuple[Any, str | None, str]] = {
    "nan": (float("nan"), "NaN", ""),
    "pos_inf": (math.inf, "Infinity", ""),
    "neg_inf": (-math.inf, "-Infinity", ""),
    "none": (None, None, "None"),
    "numeric_string": ("2.5", "2.5", ""),
    "word_string": ("abc", None, "'abc'"),
    "bool_true": (True, "1", ""),
    "bool_false": (False, "0", ""),
    "decimal": (decimal.Decimal("0.125"), "0.125", ""),
    "complex": (1 + 2j, None, "complex"),
    "object": (Opaque(), None, "Opaque"),
    "list": ([1.0, 2.0], None, "list"),
    "np_float32": (np.float32(1.5), "1.5", ""),
    "np_float64": (np.float64(-0.25), "-0.25", ""),
    "np_int64": (np.int64(7), "7", ""),
    "np_bool": (np.bool_(True), "1", ""),
    "np_nan": (np.float32("nan"), "NaN", ""),
    "np_0d": (np.array(2.75), "2.75", ""),
    "np_1elem": (np.array([[3.5]]), "3.5", ""),
    "np_multi": (np.array([1.0, 2.0, 3.0]), None, "3 elements"),
    "np_empty": (np.array([]), None, "0 elements"),
    "np_str_array": (np.array("x"), None, "not a number"),
    "torch_0d": (torch.tensor(0.5), "0.5", ""),
    "torch_1elem": (torch.tensor([4.25]), "4.25", ""),
    "torch_grad": (torch.tensor(1.25, requires_grad=True) * 1, "1.25", ""),
    "torch_int": (torch.tensor(9, dtype=torch.int64), "9", ""),
    "torch_bf16": (torch.tensor(0.5, dtype=torch.bfloat16), "0.5", ""),
    "torch_inf": (torch.tensor(float("inf")), "Infinity", ""),
    "torch_multi": (torch.ones(2, 2), None, "4 elements"),
    "torch_complex": (torch.tensor(1 + 1j), None, "complex"),
}


def test_metric_values_logged_or_rejected(
    comet_env: ServerHandle, reader: Reader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="comet_callbacks")
    with Experiment(project_name="bad-input", **QUIET) as exp:
        for name, (val, _, _) in METRICS.items():
            exp.log_metric(name, val, step=1)  # must never raise
        exp.log_metrics({"nested": {"ok": 1, "bad": None}}, step=1)
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("comet_callbacks")]
    stored = {}
    for name in METRICS:
        points = reader.metrics(exp.key, name)
        stored[name] = [p["metricValue"] for p in points]
    problems = []
    for name, (_, text, words) in METRICS.items():
        if text is not None:
            if stored[name] != [text]:
                problems.append(f"{name}: stored {stored[name]}, expected [{text!r}]")
        else:
            if stored[name]:
                problems.append(f"{name}: garbage stored {stored[name]}")
            said = [m for m in messages if repr(name) in m]
            if not said or words not in said[0]:
                problems.append(f"{name}: no clear message (got {said})")
    assert not problems, "\n".join(problems)
    assert [p["metricValue"] for p in reader.metrics(exp.key, "nested/ok")] == ["1"]
    assert reader.metrics(exp.key, "nested/bad") == []


@pytest.mark.parametrize(
    "name",
    [k for k, (_, text, _) in METRICS.items() if text is None],
)
def test_strict_mode_raises_value_error_naming_the_value(
    comet_env: ServerHandle, name: str
) -> None:
    val, _, words = METRICS[name]
    with Experiment(project_name="strict", strict=True, **QUIET) as exp:
        with pytest.raises(ValueError) as info:
            exp.log_metric(name, val)
        assert name in str(info.value) and words in str(info.value)


def test_bad_steps_and_names(
    comet_env: ServerHandle, reader: Reader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="comet_callbacks")
    huge = "h" * 5000
    uni = "λόσς/ñ/🚀/\u200b/中文"
    with Experiment(project_name="names", **QUIET) as exp:
        exp.log_metric(huge, 1.0, step=1)
        exp.log_metric(uni, 2.0, step=np.int64(2))
        exp.log_metric("", 1.0)
        exp.log_metric(123, 1.0)  # type: ignore[arg-type]
        exp.log_metric(None, 1.0)  # type: ignore[arg-type]
        exp.log_metric("neg_step", 1.0, step=-1)
        exp.log_metric("float_step", 1.0, step=1.5)  # type: ignore[arg-type]
        exp.log_metric("bool_step", 1.0, step=True)  # type: ignore[arg-type]
        exp.log_metric("tensor_step", 1.0, step=torch.tensor(3))  # type: ignore[arg-type]
        exp.log_metric("ctx", 1.0, context=5)  # type: ignore[arg-type]
        exp.log_parameter(huge, "v")
        exp.log_parameter(uni, uni)
    names = {m["name"] for m in reader.metric_summary(exp.key)}
    long_names = [n for n in names if n.startswith("hhhh")]
    assert len(long_names) == 1 and len(long_names[0]) == 1000 and "truncated" in long_names[0]
    assert uni in names
    assert [p["step"] for p in reader.metrics(exp.key, uni)] == [2]
    assert [p["step"] for p in reader.metrics(exp.key, "tensor_step")] == [3]
    for rejected in ("neg_step", "float_step", "bool_step", "ctx"):
        assert rejected not in names
    assert "" not in names and "123" not in names and "None" not in names
    text = "\n".join(r.getMessage() for r in caplog.records)
    for words in ("must not be empty", "got int", "got NoneType", "got -1", "1.5", "bool"):
        assert words in text, words
    params = reader.parameters(exp.key)
    assert params[uni] == uni
    assert any(len(k) == 1000 and k.startswith("hhh") for k in params)


@dataclasses.dataclass
class Config:
    lr: float = 0.1
    tags: tuple[str, ...] = ("a", "b")


def test_parameter_structures(
    comet_env: ServerHandle, reader: Reader, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="comet_callbacks")
    deep: dict[str, Any] = {}
    cur = deep
    for _ in range(60):
        cur["d"] = {}
        cur = cur["d"]
    cur["leaf"] = 1
    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    lst: list[Any] = [1]
    lst.append(lst)
    params = {
        "deep": deep,
        "cyclic": cyclic,
        "cyclic_list": lst,
        "obj": Opaque(),
        "unprintable": Unprintable(),
        "nan": float("nan"),
        "inf": -math.inf,
        "set": {3, 1, 2},
        "bytes": b"\x00\xff",
        "np_array": np.arange(3),
        "np_scalar": np.float32(0.5),
        "tensor": torch.tensor([1.5, 2.5]),
        "config": Config(),
        "huge_text": "x" * 200_000,
    }
    with Experiment(project_name="params", **QUIET) as exp:
        exp.log_parameters(params)  # never raises
        exp.log_parameters("not a mapping")  # type: ignore[arg-type]
        exp.log_parameters(object())
        exp.log_other("weird", Unprintable())
        exp.log_other("cycle", cyclic)
    stored = reader.parameters(exp.key)
    assert stored["cyclic|a"] == "1" and "<cycle>" in stored["cyclic|self"]
    assert stored["cyclic_list"] == '[1,"<cycle>"]'
    assert stored["obj"] == "<Opaque thing>"
    assert stored["unprintable"] == "<unprintable Unprintable>"
    assert stored["nan"] == "NaN" and stored["inf"] == "-Infinity"
    assert stored["set"] == "[1,2,3]"
    assert stored["np_array"] == "[0,1,2]" and stored["np_scalar"] == "0.5"
    assert stored["tensor"] == "[1.5,2.5]"
    assert stored["config|lr"] == "0.1" and stored["config|tags"] == '["a","b"]'
    assert "truncated" in stored["huge_text"] and len(stored["huge_text"]) <= 100_000
    deep_keys = [k for k in stored if k.startswith("deep")]
    assert len(deep_keys) == 1 and deep_keys[0].count("|") <= 21  # cut at the depth limit
    others = reader.others(exp.key)
    assert others["weird"] == "<unprintable Unprintable>"
    assert "<cycle>" in others["cycle"]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "parameters must be a mapping, dataclass or Namespace, got str" in text


def test_metric_whose_repr_raises_is_rejected_not_raised(
    comet_env: ServerHandle, reader: Reader, caplog: pytest.LogCaptureFixture
) -> None:
    """An object whose ``repr``/``str`` raise must not crash the training loop (core bug:
    ``values._short`` calls ``repr`` unguarded, so the RuntimeError escapes ``log_metric``)."""
    caplog.set_level(logging.WARNING, logger="comet_callbacks")
    with Experiment(project_name="bad-input", **QUIET) as exp:
        exp.log_metric("unprintable", Unprintable(), step=1)
        exp.log_metric("after", 1.0, step=1)
    assert reader.metrics(exp.key, "unprintable") == []
    assert len(reader.metrics(exp.key, "after")) == 1
    assert any("'unprintable'" in r.getMessage() for r in caplog.records)
    with Experiment(project_name="strict", strict=True, **QUIET) as exp:
        with pytest.raises(ValueError, match="unprintable"):
            exp.log_metric("unprintable", Unprintable())


def test_none_parameter_is_stored_or_rejected_on_the_callers_thread(
    comet_env: ServerHandle, reader: Reader, caplog: pytest.LogCaptureFixture
) -> None:
    """``log_parameter("p", None)`` must either be stored or be reported at once, naming the
    parameter (core bug: it is sent with ``parameterValue: null``, the server answers 400
    ``parameterValue: required`` and the value is silently dropped by the sender)."""
    caplog.set_level(logging.WARNING, logger="comet_callbacks")
    with Experiment(project_name="params", **QUIET) as exp:
        exp.log_parameter("maybe", None)
        exp.log_parameters({"nested": {"also": None}, "fine": 1})
        caller_side = [r.getMessage() for r in caplog.records if r.threadName == "MainThread"]
    stored = reader.parameters(exp.key)
    assert stored.get("fine") == "1"
    for name in ("maybe", "nested|also"):
        assert name in stored or any(name in m for m in caller_side), (name, stored, caller_side)


def test_strict_parameters_and_assets_raise_value_error(comet_env: ServerHandle) -> None:
    with Experiment(project_name="strict", strict=True, **QUIET) as exp:
        with pytest.raises(ValueError, match="got str"):
            exp.log_parameters("nope")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="not a readable file"):
            exp.log_asset("/no/such/file.bin")
        with pytest.raises(ValueError, match="got int"):
            exp.log_asset(42)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="step"):
            exp.log_metric("m", 1.0, step=-5)


def test_nothing_raises_after_end_or_when_disabled(comet_env: ServerHandle) -> None:
    exp = Experiment(project_name="after", **QUIET)
    exp.end()
    exp.log_metric("m", None)
    exp.log_metric("m", 1.0)
    exp.log_parameters({"a": object()})
    exp.log_asset(b"x", file_name="x.bin")
    exp.end()
    off = Experiment(project_name="off", mode="disabled")
    off.log_metric("m", None)
    off.log_parameters("nope")  # type: ignore[arg-type]
    off.end()
