"""The benchmarks' own guarantees: a tracker that stored nothing fails the run, the read-backs
count what was really written, the fixed/per-step split is a straight line through two
lengths, and the report shows a failure instead of a figure."""

from __future__ import annotations

import os
import threading
import time
import zlib
from pathlib import Path

import pytest

from benchmarks.harness import line_through
from benchmarks.peers import NothingStored, check_stored, get
from benchmarks.peers.wandb_offline import _records
from benchmarks.report import Results


def test_a_tracker_that_stored_nothing_fails_loudly(tmp_path: Path) -> None:
    peer = get("csv")
    with pytest.raises(NothingStored) as err:
        check_stored(peer, str(tmp_path), "loss", expected=300)
    assert "csv" in str(err.value) and "expected at least 300" in str(err.value)


def test_csv_read_back_counts_rows_written(tmp_path: Path) -> None:
    """The CSV read-back counts the non-empty cells of each column, in the layout Lightning's
    ``CSVLogger`` writes (``<save_dir>/bench/version_N/metrics.csv``)."""
    out = tmp_path / "bench" / "version_0"
    out.mkdir(parents=True)
    rows = ["epoch,step,train_loss,val_loss"] + [f"0,{i},{1 / (i + 1)}," for i in range(7)]
    (out / "metrics.csv").write_text("\n".join([*rows, "0,7,,0.5"]) + "\n")
    peer = get("csv")
    assert check_stored(peer, str(tmp_path), "train_loss", expected=7) == 7
    with pytest.raises(NothingStored):
        check_stored(peer, str(tmp_path), "train_loss", expected=8)
    assert peer.stored(str(tmp_path))["val_loss"] == 1


def test_our_offline_read_back_counts_the_event_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in list(os.environ):
        if name.startswith("COMET_"):
            monkeypatch.delenv(name)
    peer = get("us-offline-metrics")
    for k, v in peer.env(str(tmp_path)).items():
        monkeypatch.setenv(k, v)
    peer.open(str(tmp_path))
    for i in range(5):
        peer.log_scalar()("loss", 0.5, i)
    peer.close()
    assert peer.stored(str(tmp_path)) == {"loss": 5}
    assert peer.stored(str(tmp_path)) == {"loss": 5}  # asked again: the same run
    peer.open(str(tmp_path))
    peer.log_scalar()("loss", 0.5, 0)
    peer.close()
    assert peer.stored(str(tmp_path)) == {"loss": 1}  # the new run only: no double counting


def _chunk(kind: int, data: bytes) -> bytes:
    crc = zlib.crc32(bytes([kind]) + data)  # the reader does not check it
    return crc.to_bytes(4, "little") + len(data).to_bytes(2, "little") + bytes([kind]) + data


def test_wandb_run_file_reader_joins_records_across_blocks(tmp_path: Path) -> None:
    """A record split in FIRST/LAST pieces over a 32 KiB block boundary, with the block's
    padding, comes back whole; a FULL record before and after it too."""
    block = 32768
    header = b":W&B" + (0xBEE1).to_bytes(2, "little") + b"\x00"
    first = b"a" * 100
    body = header + _chunk(1, first)
    big = b"x" * 40000
    room = block - len(body) - 7
    body += _chunk(2, big[:room])
    rest = big[room:]
    body += _chunk(4, rest)
    body += _chunk(1, b"end")
    assert len(body) > block
    path = tmp_path / "run.wandb"
    path.write_bytes(body)
    assert list(_records(str(path))) == [first, big, b"end"]
    (tmp_path / "bad.wandb").write_bytes(b"nope")
    with pytest.raises(ValueError, match="not a wandb run file"):
        list(_records(str(tmp_path / "bad.wandb")))


def test_fixed_cost_and_cost_per_step_from_two_lengths() -> None:
    # 30 ms per fit + 50 µs per step: 45 ms at 300 steps, 90 ms at 1,200
    fixed, per_step = line_through(300, 0.045, 1200, 0.090)
    assert fixed == pytest.approx(0.030)
    assert per_step == pytest.approx(50e-6)


def test_report_shows_a_failed_tracker_instead_of_a_figure() -> None:
    results = Results({"CPU": "test", "cores": "2"}, ["--quick"], quick=True)
    results.add(
        {
            "scenario": "train",
            "peer": "comet_ml",
            "label": "comet_ml (offline)",
            "framework": "lightning",
            "workload": "tiny",
            "error": "nothing stored: comet_ml: read back 0 points",
        }
    )
    text = results.render()
    assert "**error**: nothing stored: comet_ml: read back 0 points" in text
    assert "shared 2-core machine" in text
    assert results.failures() == ["train comet_ml: nothing stored: comet_ml: read back 0 points"]


def test_readme_section_replaced_up_to_the_next_heading(tmp_path: Path) -> None:
    from benchmarks.__main__ import replace_section

    readme = tmp_path / "README.md"
    readme.write_text("# T\n\n## Performance\n\nold claim\n\n### sub\n\nold\n\n## Design\n\nkept\n")
    replace_section(readme, "## Performance", "## Performance\n\nnew row")
    assert readme.read_text() == "# T\n\n## Performance\n\nnew row\n\n## Design\n\nkept\n"


def _burn(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_own_cpu_counts_the_trackers_hooks_and_threads_not_the_framework() -> None:
    """The own-CPU meter times the tracker's hooks on the training thread and all CPU off it;
    the framework's base hooks stay unwrapped, so Lightning still sees which hooks the
    tracker overrides."""
    pl = pytest.importorskip("lightning.pytorch")
    from lightning.pytorch.utilities.model_helpers import is_overridden

    from benchmarks.workloads import CpuMeter, OwnMeter

    class Tracker(pl.Callback):
        def on_train_batch_end(self, *args: object) -> None:
            _burn(0.05)
            self.helper()  # nested: counted once, as part of the hook

        def helper(self) -> None:
            _burn(0.01)

    meter = OwnMeter(CpuMeter())
    meter.start()
    _burn(0.1)  # the training's own work: not the tracker's
    cb = meter.wrap(Tracker())
    assert is_overridden("on_train_batch_end", cb, pl.Callback)
    assert not is_overridden("on_validation_end", cb, pl.Callback)
    cb.on_train_batch_end(None, None, None, None, 0)
    assert 0.06 <= meter.hook_ns / 1e9 < 0.09 and meter.calls == 1
    worker = threading.Thread(target=_burn, args=(0.05,))
    worker.start()
    worker.join()
    assert 0.1 <= meter.own() < 0.2  # hook 0.06 + off-thread 0.05, the 0.1 s of training not
