"""Value conversion: metric values, steps, names, nested parameters, JSON safety, truncation."""

from __future__ import annotations

import argparse
import dataclasses
import math
from decimal import Decimal
from fractions import Fraction

import pytest

from comet_callbacks.values import (
    MAX_NAME,
    check_name,
    check_step,
    flatten_params,
    json_safe,
    to_metric_value,
    truncate,
)


def test_metric_values_plain() -> None:
    assert to_metric_value(1) == 1 and type(to_metric_value(1)) is int
    assert to_metric_value(0.5) == 0.5
    assert to_metric_value(True) == 1
    assert to_metric_value(Decimal("0.25")) == 0.25
    assert to_metric_value(Fraction(1, 4)) == 0.25
    assert to_metric_value("1e-3") == 0.001
    assert math.isnan(to_metric_value(float("nan")))


def test_metric_values_numpy_and_torch() -> None:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    assert to_metric_value(np.float32(0.5)) == 0.5
    assert to_metric_value(np.int64(3)) == 3 and type(to_metric_value(np.int64(3))) is int
    assert to_metric_value(np.bool_(True)) == 1
    assert to_metric_value(np.array(2.5)) == 2.5
    assert to_metric_value(np.array([4.0])) == 4.0
    assert to_metric_value(torch.tensor(1.5)) == 1.5
    assert to_metric_value(torch.tensor([2], dtype=torch.int32)) == 2
    assert to_metric_value(torch.tensor(0.5, requires_grad=True) * 2) == 1.0
    with pytest.raises(ValueError, match="3 elements"):
        to_metric_value(np.zeros(3), "w")
    with pytest.raises(ValueError, match="2 elements"):
        to_metric_value(torch.zeros(2), "w")


@pytest.mark.parametrize("bad", [None, "abc", [1.0], {"a": 1}, object(), 1 + 2j])
def test_metric_values_rejected_naming_the_metric(bad) -> None:
    with pytest.raises(ValueError, match="'loss'"):
        to_metric_value(bad, "loss")


def test_steps_and_names() -> None:
    assert check_step(None) is None and check_step(3) == 3 and check_step(4.0) == 4
    for bad in (-1, 1.5, "3", True, 2**64):
        with pytest.raises(ValueError, match="step"):
            check_step(bad)
    with pytest.raises(ValueError, match="epoch"):
        check_step(-2, "epoch")
    with pytest.raises(ValueError, match="metric name must be a string"):
        check_name(5, "metric name")
    with pytest.raises(ValueError, match="must not be empty"):
        check_name("", "metric name")
    long = check_name("n" * 5000)
    assert len(long) == MAX_NAME and "truncated" in long


def test_truncate_marker() -> None:
    assert truncate("short", 10) == "short"
    cut = truncate("x" * 1000, 100)
    assert len(cut) == 100 and cut.endswith("[truncated 900 chars]")


def test_json_safe_non_finite_and_unknowns() -> None:
    assert json_safe({"a": float("nan"), "b": [float("inf"), -math.inf]}) == {
        "a": "NaN",
        "b": ["Infinity", "-Infinity"],
    }
    assert json_safe({1, 3, 2}) == [1, 2, 3]
    loop: list = [1]
    loop.append(loop)
    assert json_safe(loop) == [1, "<cycle>"]
    assert json_safe(object()).startswith("<object object")


@dataclasses.dataclass
class Inner:
    lr: float = 0.1


@dataclasses.dataclass
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    name: str = "run"


def test_flatten_shapes() -> None:
    assert flatten_params({"a": {"b": 1, "c": {"d": 2}}, "e": 3}) == (
        {"a|b": 1, "a|c|d": 2, "e": 3},
        True,
    )
    assert flatten_params({"a": 1}) == ({"a": 1}, False)
    assert flatten_params(Outer()) == ({"inner|lr": 0.1, "name": "run"}, True)
    ns = argparse.Namespace(x=1, sub=argparse.Namespace(y=2))
    assert flatten_params(ns) == ({"x": 1, "sub|y": 2}, True)
    assert flatten_params({"a": {}}, prefix="p|") == ({"p|a": {}}, False)
    with pytest.raises(ValueError, match="parameters must be"):
        flatten_params([1, 2])


def test_flatten_cycle_is_cut() -> None:
    d: dict = {"a": 1}
    d["self"] = d
    flat, _ = flatten_params(d)
    assert flat["a"] == 1 and "<cycle>" in flat.values()
