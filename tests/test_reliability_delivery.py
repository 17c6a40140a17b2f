"""No loss, no duplicates: runs logged through the fault proxy, a server outage, SIGKILL.

Every test compares what the SERVER stored (read back directly, not through the proxy) with
what the run logged: metric points as a ``(step, value)`` multiset, parameters, output lines
and an asset. Events that ``end()`` could not deliver in time are replayed with the upload
path (``upload_run`` / ``comet-callbacks upload``), which must not duplicate anything.
"""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from faultproxy import FaultProxy
from quiet import quiet

from comet_callbacks import Experiment
from comet_callbacks.cli import main as cli_main
from comet_callbacks.config import Settings
from comet_callbacks.server.embedded import ServerHandle
from comet_callbacks.server.reader import Reader
from comet_callbacks.upload import upload_run

# A thread dying with an exception inside the client is a failure, not a warning.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")

#: Quiet runs: only what the test logs (and stdout, captured) goes out.
QUIET: dict[str, Any] = quiet(auto_log_output_logger=True)
PARAMS = {"lr": 0.001, "optimizer": {"name": "adam", "betas": [0.9, 0.999]}, "layers": 3}
PARAMS_STORED = {
    "lr": "0.001",
    "optimizer|name": "adam",
    "optimizer|betas": "[0.9,0.999]",
    "layers": "3",
}
ASSET = bytes(range(256)) * 64  # 16 KiB, every byte value


def not_creation(method: str, path: str) -> bool:
    """Faults everywhere but experiment creation (synchronous by design: it would go offline)."""
    return not path.endswith("write/experiment/create")


def value(i: int) -> float:
    return round(i * 0.001 - 3.5, 6)


@pytest.fixture
def proxied(comet_env: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """A fault proxy in front of ``comet_server``; the client's COMET_URL_OVERRIDE points at it."""
    proxy = FaultProxy(comet_env.url, seed=1, match=not_creation)
    proxy.start()
    monkeypatch.setenv("COMET_URL_OVERRIDE", proxy.url)
    try:
        yield proxy
    finally:
        proxy.stop()


def log_run(
    n: int, *, lines: int = 20, timeout_cleaning: float = 120, **settings: Any
) -> tuple[Experiment, list[tuple[int, float]]]:
    """The "training loop": parameters, ``n`` metric points, printed lines, an asset, end()."""
    exp = Experiment(
        project_name="reliability", timeout_cleaning=timeout_cleaning, **QUIET, **settings
    )
    assert exp.mode == "online"
    logged = []
    exp.log_parameters(PARAMS)
    every = max(1, n // lines)
    for i in range(n):
        exp.log_metric("loss", value(i), step=i)
        logged.append((i, value(i)))
        if i % every == 0:
            print(f"progress line {i // every}")
    exp.log_asset(ASSET, file_name="weights.bin", overwrite=True)
    exp.end()
    return exp, logged


def deliver_leftovers(exp: Experiment, tries: int = 10) -> int:
    """Upload what end() could not deliver (re-running an interrupted upload); events sent."""
    path = exp.offline_path
    sent = 0
    for _ in range(tries):
        if path is None or not os.path.isdir(path):
            return sent
        res = upload_run(path, Settings.resolve())
        sent += res.sent
        if res.complete:
            return sent
    raise AssertionError(f"upload never completed: {res.errors[:3]}")


def assert_exactly_once(
    reader: Reader, key: str, logged: list[tuple[int, float]], *, lines: int = 20
) -> None:
    """Server holds each logged point once, the parameters, each printed line once, one asset."""
    points = reader.metrics(key, "loss")
    stored = collections.Counter((p["step"], float(p["metricValue"])) for p in points)
    expected = collections.Counter(logged)
    missing = expected - stored
    extra = stored - expected
    assert not missing and not extra, (
        f"{len(missing)} missing (e.g. {list(missing)[:5]}), "
        f"{len(extra)} duplicated/unexpected (e.g. {list(extra)[:5]})"
    )
    params = reader.parameters(key)
    assert {k: params.get(k) for k in PARAMS_STORED} == PARAMS_STORED
    output = reader.output(key)
    for j in range(lines):
        assert output.count(f"progress line {j}\n") == 1, (j, output.count(f"progress line {j}\n"))
    assets = [a for a in reader.assets(key) if a["fileName"] == "weights.bin"]
    assert len(assets) == 1, assets
    assert reader.get_asset(key, assets[0]["assetId"]) == ASSET


# ------------------------------------------------------------------ faults, one kind at a time

SINGLE = {
    # kind: (proportion, points, extra proxy/transport settings)
    "drop": (0.08, 600, {}),
    "delay": (0.03, 400, {"delay_s": 1.3, "timeout_api": 1.0}),  # longer than the client waits
    "500": (0.08, 600, {}),
    "502": (0.08, 600, {}),
    "503": (0.08, 600, {}),
    "429": (0.03, 400, {"retry_after": 1}),
    "cut_after_commit": (0.08, 600, {}),
}


@pytest.mark.parametrize("kind", list(SINGLE))
def test_no_loss_no_duplicates_under_each_fault(
    kind: str, proxied: FaultProxy, reader: Reader
) -> None:
    share, n, extra = SINGLE[kind]
    extra = dict(extra)
    proxied.delay_s = extra.pop("delay_s", proxied.delay_s)
    proxied.retry_after = extra.pop("retry_after", proxied.retry_after)
    proxied.set_faults({kind: share})
    exp, logged = log_run(n, timeout_api=extra.get("timeout_api", 5.0))
    assert proxied.stats[kind] > 0, proxied.stats  # the fault really happened
    deliver_leftovers(exp)
    assert_exactly_once(reader, exp.key, logged)


MIX = {
    "drop": 0.01,
    "delay": 0.005,
    "500": 0.005,
    "502": 0.005,
    "503": 0.005,
    "429": 0.001,
    "cut_after_commit": 0.01,
}


@pytest.mark.slow
def test_no_loss_no_duplicates_20000_points_mixed_faults(
    proxied: FaultProxy, reader: Reader
) -> None:
    # batches make requests few (about 40 here): the shares are raised so each kind happens
    proxied.set_faults({k: 0.08 if k in ("drop", "cut_after_commit") else 0.05 for k in MIX})
    proxied.delay_s = 0.2
    exp, logged = log_run(20_000, timeout_api=5.0, timeout_cleaning=240)
    assert all(proxied.stats[k] > 0 for k in MIX), proxied.stats
    deliver_leftovers(exp)
    assert_exactly_once(reader, exp.key, logged)


def test_asset_upload_cut_after_commit_then_retried_is_stored_once(
    comet_env: ServerHandle, reader: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    """overwrite=True makes a retried asset upload idempotent (the retry replaces the copy)."""
    seen: collections.Counter[str] = collections.Counter()

    def first_upload_only(method: str, path: str) -> bool:
        if path.endswith("upload-asset"):
            seen["upload"] += 1
            return seen["upload"] == 1
        return False

    with FaultProxy(comet_env.url, faults={"cut_after_commit": 1.0}, match=first_upload_only) as p:
        monkeypatch.setenv("COMET_URL_OVERRIDE", p.url)
        exp = Experiment(project_name="reliability", **QUIET)
        exp.log_asset(ASSET, file_name="a.bin", overwrite=True)
        exp.end()
        assert p.stats["cut_after_commit"] == 1
    assets = reader.assets(exp.key)
    assert [a["fileName"] for a in assets] == ["a.bin"]


def test_non_idempotent_writes_cut_after_commit_are_stored_once(
    comet_env: ServerHandle, reader: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: collections.Counter[str] = collections.Counter()

    def first_write_only(method: str, path: str) -> bool:
        if path.endswith(("upload-asset", "write/experiment/html")):
            seen[path] += 1
            return seen[path] == 1
        return False

    with FaultProxy(comet_env.url, faults={"cut_after_commit": 1.0}, match=first_write_only) as p:
        monkeypatch.setenv("COMET_URL_OVERRIDE", p.url)
        exp = Experiment(project_name="reliability", **QUIET)
        exp.log_asset(ASSET, file_name="plain.bin")
        exp.log_html("<p>once</p>")
        exp.end()
        assert p.stats["cut_after_commit"] == 2
    assert [a["fileName"] for a in reader.assets(exp.key)] == ["plain.bin"]
    assert reader.html(exp.key) == "<p>once</p>"


# ------------------------------------------------------------------ server outage


@pytest.mark.slow
def test_server_down_for_30s_mid_run_everything_arrives(
    comet_env: ServerHandle, reader: Reader
) -> None:
    """The server stops for 30 s in the middle of a run; logging goes on; all arrives after."""
    exp = Experiment(project_name="reliability", timeout_cleaning=60, timeout_api=2.0, **QUIET)
    exp.log_parameters(PARAMS)
    logged = []
    for i in range(300):
        exp.log_metric("loss", value(i), step=i)
        logged.append((i, value(i)))
    assert exp.flush(30)
    comet_env.stop()
    down_at = time.monotonic()
    for i in range(300, 2300):  # logged while the server is down
        exp.log_metric("loss", value(i), step=i)
        logged.append((i, value(i)))
        if i % 100 == 0:
            print(f"progress line {(i - 300) // 100}")
    exp.log_asset(ASSET, file_name="weights.bin", overwrite=True)
    time.sleep(max(0.0, 30 - (time.monotonic() - down_at)))
    comet_env.start()
    for i in range(2300, 2600):
        exp.log_metric("loss", value(i), step=i)
        logged.append((i, value(i)))
    exp.end()
    assert not os.path.isdir(exp.offline_path), "end() should have delivered everything"
    assert_exactly_once(reader, exp.key, logged)
    assert reader.others(exp.key).get("status") == "success"


def test_run_ends_while_server_is_down_then_cli_upload_delivers(
    comet_env: ServerHandle, reader: Reader, capsys: pytest.CaptureFixture[str]
) -> None:
    exp = Experiment(project_name="reliability", timeout_cleaning=1.5, timeout_api=1.0, **QUIET)
    exp.log_parameters(PARAMS)
    logged = []
    for i in range(100):
        exp.log_metric("loss", value(i), step=i)
        logged.append((i, value(i)))
    assert exp.flush(30)
    comet_env.stop()
    for i in range(100, 500):
        exp.log_metric("loss", value(i), step=i)
        logged.append((i, value(i)))
        if i % 20 == 0:
            print(f"progress line {(i - 100) // 20}")
    exp.log_asset(ASSET, file_name="weights.bin", overwrite=True)
    exp.end()  # cannot deliver: keeps the events in the spool
    assert os.path.isdir(exp.offline_path)
    comet_env.start()
    assert cli_main(["upload", "-q", exp.offline_path]) == 0
    assert "complete" in capsys.readouterr().out
    assert_exactly_once(reader, exp.key, logged)
    # a second upload sends nothing again
    assert cli_main(["upload", "-q", exp.offline_path]) == 0
    assert_exactly_once(reader, exp.key, logged)


# ------------------------------------------------------------------ process death

CHILD = textwrap.dedent(
    """
    import os, sys, time
    from comet_callbacks import Experiment
    progress = open(sys.argv[1], "a", buffering=1)
    exp = Experiment(project_name="killed", auto_log_env_details=False, auto_log_git_metadata=False,
                     auto_log_git_patch=False, auto_log_code=False, auto_log_env_cpu=False)
    exp.log_parameters({"lr": 0.001, "layers": 3})
    progress.write(f"key {exp.key}\\n")
    i = 0
    while True:
        exp.log_metric("loss", round(i * 0.001 - 3.5, 6), step=i)
        if i % 20 == 0:
            progress.write(f"{i} {time.time()}\\n")
        i += 1
        time.sleep(0.002)
    """
)


@pytest.mark.parametrize("seed", [11])
def test_sigkill_then_upload_delivers_everything_logged_a_second_before(
    seed: int, comet_env: ServerHandle, reader: Reader, tmp_path: Path
) -> None:
    rng = random.Random(seed)
    progress = tmp_path / "progress.txt"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    with FaultProxy(comet_env.url, faults=MIX, seed=seed, delay_s=0.2, match=not_creation) as px:
        env = {**os.environ, "COMET_URL_OVERRIDE": px.url, "OMP_NUM_THREADS": "1"}
        child = subprocess.Popen([sys.executable, str(script), str(progress)], env=env)
        try:
            deadline = time.monotonic() + 60
            while "key " not in (progress.read_text() if progress.exists() else ""):
                assert child.poll() is None and time.monotonic() < deadline, "child did not start"
                time.sleep(0.05)
            time.sleep(rng.uniform(2.0, 4.0))
            killed_at = time.time()
            child.send_signal(signal.SIGKILL)
            child.wait(10)
        finally:
            if child.poll() is None:
                child.kill()
    lines = progress.read_text().splitlines()
    key = lines[0].split()[1]
    marks = [(int(a), float(b)) for a, b in (ln.split() for ln in lines[1:] if ln.count(" ") == 1)]
    safe = max(i for i, t in marks if t <= killed_at - 1.0)
    assert safe > 100, marks[-3:]
    offline = os.environ["COMET_OFFLINE_DIRECTORY"]
    up = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "comet-callbacks"), "upload", "-q", offline],
        env={**os.environ, "COMET_URL_OVERRIDE": comet_env.url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    stored = collections.Counter(
        (p["step"], float(p["metricValue"])) for p in reader.metrics(key, "loss")
    )
    dupes = [k for k, c in stored.items() if c > 1]
    assert not dupes, f"{len(dupes)} points stored more than once, e.g. {dupes[:5]}"
    missing = [i for i in range(safe + 1) if stored[(i, value(i))] != 1]
    assert not missing, f"{len(missing)} of {safe + 1} points lost, e.g. {missing[:5]}"
    assert reader.parameters(key) == {"lr": "0.001", "layers": "3"}
    others = reader.others(key)
    assert others.get("status") == "crashed" and others.get("hasCrashed") == "true"
    assert reader.metadata(key)["running"] is False
