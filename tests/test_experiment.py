"""``Experiment`` API against the local server: each method's effect, read back by the reader.

Capture (code, git, system details, monitor, output) is switched off with :data:`QUIET`
except where a test is about it, so each test checks exactly what it logged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from quiet import quiet

import comet_callbacks
from comet_callbacks import Experiment
from comet_callbacks.experiment import ExperimentError

#: Settings that switch off automatic capture and keep waits short.
QUIET: dict[str, Any] = quiet(timeout_cleaning=20)


def _exp(**kw: Any) -> Experiment:
    return Experiment(**{**QUIET, **kw})


# ---------------------------------------------------------------------- create / continue


def test_create_with_arguments(comet_env, reader) -> None:
    exp = _exp(project_name="proj", experiment_name="first", tags=["a", "b"])
    assert exp.mode == "online"
    assert exp.workspace == "local" and exp.project_name == "proj"
    assert exp.url == f"{comet_env.url}/local/proj/{exp.key}"
    exp.end()
    [row] = reader.experiments("local", "proj")
    assert row["experimentKey"] == exp.key
    assert row["experimentName"] == "first"
    assert sorted(reader.tags(exp.key)) == ["a", "b"]
    meta = reader.metadata(exp.key)
    assert meta["running"] is False and meta["endTimeMillis"] is not None
    assert meta["hasCrashed"] is False
    assert reader.others(exp.key)["status"] == "success"


def test_create_from_settings_env(comet_env, reader, monkeypatch) -> None:
    monkeypatch.setenv("COMET_PROJECT_NAME", "envproj")
    monkeypatch.setenv("COMET_EXPERIMENT_NAME", "from-env")
    with comet_callbacks.start(**QUIET) as exp:
        assert exp.project_name == "envproj"
    [row] = reader.experiments("local", "envproj")
    assert row["experimentName"] == "from-env"


def test_continue_by_key_argument_and_env(comet_env, reader, monkeypatch) -> None:
    first = _exp(project_name="p", experiment_name="orig")
    first.log_metric("loss", 1.0, step=0)
    first.end()
    again = _exp(experiment_key=first.key)
    assert again.key == first.key and again.project_name == "p"
    again.log_metric("loss", 2.0, step=1)
    again.end()
    monkeypatch.setenv("COMET_EXPERIMENT_KEY", first.key)
    third = _exp()
    assert third.key == first.key
    third.log_metric("loss", 3.0, step=2)
    third.end()
    assert [m["metricValue"] for m in reader.metrics(first.key, "loss")] == ["1", "2", "3"]
    assert len(reader.experiments("local", "p")) == 1
    assert reader.metadata(first.key)["experimentName"] == "orig"


def test_bad_key_forbidden_workspace_unknown_experiment(comet_env) -> None:
    with pytest.raises(ExperimentError, match=r"401.*COMET_API_KEY"):
        _exp(api_key="not-a-valid-key")
    with pytest.raises(ExperimentError, match=r"403.*COMET_WORKSPACE"):
        _exp(workspace="someone-elses")
    with pytest.raises(ExperimentError, match=r"404.*COMET_EXPERIMENT_KEY"):
        _exp(experiment_key="0" * 32)


# ---------------------------------------------------------------------- every method


def test_every_method_reaches_the_server(comet_env, reader, tmp_path) -> None:
    src = tmp_path / "train.py"
    src.write_text("print('hello')\n")
    blob = tmp_path / "weights.bin"
    blob.write_bytes(b"\x00\x01" * 1000)
    exp = _exp(project_name="all")
    exp.log_metric("acc", 0.5, step=3, epoch=1)
    exp.log_metrics({"loss": 0.25, "val": {"loss": 0.5}}, step=4, prefix="train")
    exp.log_parameter("lr", 0.001)
    exp.log_parameters({"opt": {"name": "adam", "betas": [0.9, 0.99]}, "epochs": 3})
    exp.log_other("note", "hi")
    exp.log_others({"count": 3, "flag": True})
    exp.add_tag("t1")
    exp.add_tags(["t2", "t3"])
    exp.set_name("renamed")
    exp.log_html("<b>one</b>")
    exp.log_html("<i>two</i>")
    exp.log_asset(str(blob), metadata={"kind": "weights"}, step=7)
    exp.log_asset(b"raw bytes", file_name="data.txt", type="notes")
    exp.log_code(code="x = 1\n", code_name="snippet.py")
    exp.log_code(file_name=str(src))
    exp.set_model_graph("Linear(4 -> 2)")
    exp.log_system_info("cluster", {"nodes": 2})
    assert exp.flush(20) is True
    key = exp.key
    exp.end()

    [acc] = reader.metrics(key, "acc")
    assert (acc["metricValue"], acc["step"], acc["epoch"]) == ("0.5", 3, 1)
    assert reader.metrics(key, "train/loss")[0]["step"] == 4
    assert reader.metrics(key, "train/val/loss")[0]["metricValue"] == "0.5"
    params = reader.parameters(key)
    assert params == {
        "lr": "0.001",
        "opt|name": "adam",
        "opt|betas": "[0.9,0.99]",
        "epochs": "3",
    }
    others = reader.others(key)
    assert others["note"] == "hi" and others["count"] == "3" and others["flag"] == "true"
    assert others["hasNestedParams"] == "true"
    assert others["Name"] == "renamed"
    assert reader.metadata(key)["experimentName"] == "renamed"
    assert sorted(reader.tags(key)) == ["t1", "t2", "t3"]
    assert reader.html(key) == "<b>one</b><i>two</i>"
    assets = {a["fileName"]: a for a in reader.assets(key)}
    w = assets["weights.bin"]
    assert (w["type"], w["step"], json.loads(w["metadata"])) == ("asset", 7, {"kind": "weights"})
    assert reader.get_asset(key, w["assetId"]) == blob.read_bytes()
    assert assets["data.txt"]["type"] == "notes"
    assert reader.get_asset(key, assets["data.txt"]["assetId"]) == b"raw bytes"
    code = {a["fileName"]: a for a in reader.assets(key, "source_code")}
    assert reader.get_asset(key, code["snippet.py"]["assetId"]) == b"x = 1\n"
    assert reader.get_asset(key, code["train.py"]["assetId"]) == src.read_bytes()
    assert reader.graph(key) == "Linear(4 -> 2)"
    info = reader.system_details(key)["logAdditionalSystemInfoList"]
    assert info == [{"key": "cluster", "value": {"nodes": 2}}]


def test_log_text_is_accepted(comet_env) -> None:
    """No read API for text samples: the request must succeed (no failure counted)."""
    exp = _exp()
    exp.log_text("a sample", step=1, metadata={"k": "v"})
    assert exp.flush(10) is True
    stats = exp._sender.stats  # type: ignore[union-attr]
    assert stats.sent >= 1 and not stats.failed
    exp.end()


def test_context_manager_marks_failure(comet_env, reader) -> None:
    with pytest.raises(RuntimeError, match="boom"), _exp() as exp:
        exp.log_metric("x", 1.0)
        raise RuntimeError("boom")
    assert exp.ended
    others = reader.others(exp.key)
    assert others["status"] == "failed" and others["hasCrashed"] == "true"
    meta = reader.metadata(exp.key)
    assert meta["running"] is False and meta["endTimeMillis"] is not None


# ---------------------------------------------------------------------- values


@dataclasses.dataclass
class Optim:
    name: str = "sgd"
    lr: float = 0.1


@dataclasses.dataclass
class TrainConfig:
    optim: Optim = dataclasses.field(default_factory=Optim)
    layers: list[int] = dataclasses.field(default_factory=lambda: [4, 8])


class ConfigLike(Mapping):
    """An OmegaConf-like read-only mapping."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._d = data

    def __getitem__(self, k: str) -> Any:
        v = self._d[k]
        return ConfigLike(v) if isinstance(v, dict) else v

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


def test_nested_parameters_of_every_shape(comet_env, reader) -> None:
    exp = _exp()
    exp.log_parameters(TrainConfig())
    exp.log_parameters(argparse.Namespace(batch=32, model={"depth": 2}))
    exp.log_parameters(ConfigLike({"data": {"root": "/d", "aug": {"flip": True}}}), prefix="cfg")
    exp.end()
    assert reader.parameters(exp.key) == {
        "optim|name": "sgd",
        "optim|lr": "0.1",
        "layers": "[4,8]",
        "batch": "32",
        "model|depth": "2",
        "cfg|data|root": "/d",
        "cfg|data|aug|flip": "true",
    }
    assert reader.others(exp.key)["hasNestedParams"] == "true"


def test_non_finite_and_tensor_values(comet_env, reader) -> None:
    np = pytest.importorskip("numpy")
    torch = pytest.importorskip("torch")
    exp = _exp()
    exp.log_metric("nan", float("nan"), step=0)
    exp.log_metric("inf", float("inf"), step=0)
    exp.log_metric("ninf", float("-inf"), step=0)
    exp.log_metric("np32", np.float32(0.5), step=np.int64(1))
    exp.log_metric("np64", np.float64(0.25), step=1)
    exp.log_metric("npint", np.int32(7), step=1)
    exp.log_metric("t0d", torch.tensor(1.5), step=torch.tensor(2))
    exp.log_metric("t1", torch.tensor([3.0], requires_grad=True), step=2)
    exp.log_metric("tnan", torch.tensor(float("nan")), step=2)
    exp.log_metric("flag", True, step=2)
    exp.log_parameter("p_np", np.float32(0.5))
    exp.log_parameter("p_arr", np.arange(3))
    exp.log_parameter("p_nan", float("nan"))
    exp.end()
    got = {
        n: (reader.metrics(exp.key, n)[0]["metricValue"], reader.metrics(exp.key, n)[0]["step"])
        for n in ("nan", "inf", "ninf", "np32", "np64", "npint", "t0d", "t1", "tnan", "flag")
    }
    assert got == {
        "nan": ("NaN", 0),
        "inf": ("Infinity", 0),
        "ninf": ("-Infinity", 0),
        "np32": ("0.5", 1),
        "np64": ("0.25", 1),
        "npint": ("7", 1),
        "t0d": ("1.5", 2),
        "t1": ("3", 2),
        "tnan": ("NaN", 2),
        "flag": ("1", 2),
    }
    params = reader.parameters(exp.key)
    assert params["p_np"] == "0.5" and params["p_arr"] == "[0,1,2]" and params["p_nan"] == "NaN"


def test_long_strings_are_truncated_with_a_marker(comet_env, reader) -> None:
    exp = _exp()
    exp.log_other("long", "x" * 200_000)
    exp.log_parameter("longp", "y" * 200_000)
    exp.end()
    other = reader.others(exp.key)["long"]
    param = reader.parameters(exp.key)["longp"]
    for text in (other, param):
        assert len(text) == 100_000 and text.endswith("chars]") and "truncated 100000" in text


@pytest.mark.parametrize(
    "call, arg",
    [
        (lambda e: e.log_metric("loss", "not a number"), "loss"),
        (lambda e: e.log_metric("loss", [1.0, 2.0]), "loss"),
        (lambda e: e.log_metric(5, 1.0), "metric name"),
        (lambda e: e.log_metric("loss", 1.0, step=-1), "step"),
        (lambda e: e.log_parameters({"a": 1}, step=-3), "step"),
        (lambda e: e.log_parameters({"a": 1}, source="auto"), "got 'auto'"),
        (lambda e: e.log_other(7, "v"), "other key"),
        (lambda e: e.log_asset("/no/such/file"), "file_data"),
    ],
)
def test_invalid_input_strict_raises_naming_the_argument(comet_env, call, arg) -> None:
    exp = _exp(strict=True)
    try:
        with pytest.raises(ValueError, match=arg):
            call(exp)
    finally:
        exp.end()


def test_invalid_input_reported_once_per_name_and_skipped(comet_env, reader, caplog) -> None:
    exp = _exp()
    with caplog.at_level(logging.WARNING, logger="comet_callbacks"):
        for i in range(50):
            exp.log_metric("loss", "bad", step=i)
            exp.log_metric("loss", float(i), step=i)
            exp.log_metric("acc", None, step=i)
            exp.log_metric("acc2", 1.0, step=-1)
    exp.end()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([w for w in warnings if "'loss'" in w]) == 1
    assert len([w for w in warnings if "'acc'" in w]) == 1
    assert len([w for w in warnings if "step must be" in w]) == 1
    assert len(reader.metrics(exp.key, "loss")) == 50
    assert reader.metrics(exp.key, "acc") == [] and reader.metrics(exp.key, "acc2") == []


def test_an_unknown_parameter_source_is_reported_and_the_values_kept(
    comet_env, reader, caplog
) -> None:
    """A source other than manual / auto-logged / cli is reported (naming it) and the values are
    logged anyway, as the user's own."""
    exp = _exp()
    with caplog.at_level(logging.WARNING, logger="comet_callbacks"):
        exp.log_parameters({"a": 1, "b": {"c": 2}}, source="Auto")
    exp.end()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        "comet_callbacks: parameter source must be one of manual, auto-logged, cli, got 'Auto' "
        "(further problems of this kind are not reported)"
    ]
    assert reader.parameters(exp.key) == {"a": "1", "b|c": "2"}


def test_logging_after_end_is_reported_not_raised(comet_env, reader, caplog) -> None:
    exp = _exp()
    exp.end()
    with caplog.at_level(logging.WARNING, logger="comet_callbacks"):
        for _ in range(3):
            exp.log_metric("late", 1.0)
            exp.log_parameter("late", 1)
    assert sum("has ended" in r.getMessage() for r in caplog.records) == 1
    assert reader.metrics(exp.key, "late") == []
    assert exp.flush() is True


# ---------------------------------------------------------------------- ordering


def test_parameter_last_value_wins_and_metrics_all_arrive(comet_env, reader) -> None:
    exp = _exp(workers=4)
    for i in range(200):
        exp.log_parameter("lr", i)
        exp.log_metric("m", float(i), step=i)
    exp.end()
    assert reader.parameters(exp.key)["lr"] == "199"
    points = reader.metrics(exp.key, "m")
    assert sorted(p["step"] for p in points) == list(range(200))


def test_output_arrives_in_offset_order(comet_env, reader) -> None:
    exp = _exp(auto_log_output_logger=True)
    for i in range(300):
        print(f"line {i}")
    exp.end()
    out = reader.output(exp.key)
    lines = [ln for ln in out.splitlines() if ln.startswith("line ")]
    assert lines == [f"line {i}" for i in range(300)]


@pytest.mark.parametrize("send", [True, False])
def test_send_system_metrics_switches_the_monitor(comet_env: Any, reader: Any, send: bool) -> None:
    exp = Experiment(
        send_system_metrics=send,
        cpu_monitor_interval=0.05,
        auto_log_output_logger=False,
        auto_log_env_details=False,
    )
    # a sample arrives within moments when on; off, none in several sampling intervals
    deadline = time.monotonic() + (20.0 if send else 0.5)
    while time.monotonic() < deadline and not reader.metrics(exp.key, "sys.ram.used"):
        exp.flush()
        time.sleep(0.05)
    exp.end()
    assert bool(reader.metrics(exp.key, "sys.ram.used")) is send
