"""Damaged event logs (issue 16.8): ``comet-callbacks upload`` skips each bad line, reports
it (count and line numbers), and uploads the rest of that run and every other run.

The runs are real offline runs; their ``events.jsonl`` is then damaged on disk the ways a
crash, a bad disk or a hand edit leaves it: JSON that is not an object (``42``, ``[1,2]``),
an event without its path, without a ``seq``, with a call that is not an object, an unknown
operation, a line that is not JSON, a duplicated ``seq``. Before the fix, ``42`` made the
command exit with a traceback and skip every later run, and a missing path stopped the run
at that event on every re-run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from quiet import quiet

from comet_callbacks import Experiment
from comet_callbacks.server.embedded import ServerHandle
from comet_callbacks.server.reader import Reader

CLI = str(Path(sys.executable).with_name("comet-callbacks"))


def offline_run(project: str, n: int) -> Path:
    exp = Experiment(mode="offline", project_name=project, **quiet(timeout_cleaning=10))
    exp.log_parameter("lr", 0.5)
    for i in range(n):
        exp.log_metric("loss", float(i), step=i)
    exp.end()
    assert exp.offline_path is not None
    return Path(exp.offline_path)


def damage(run: Path, bad: list[str], at: int) -> list[int]:
    """Insert the ``bad`` lines after line ``at`` of the run's event log; their line numbers."""
    log = run / "events.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    lines[at:at] = [b + "\n" for b in bad]
    log.write_text("".join(lines))
    return list(range(at + 1, at + 1 + len(bad)))


def metric_event(seq: int, step: int, **drop: Any) -> str:
    call: dict[str, Any] = {
        "method": "POST",
        "path": "write/experiment/metric",
        "json": {"experimentKey": "x" * 32, "metricName": "loss", "metricValue": 1.0, "step": step},
    }
    for k in drop:
        call.pop(k, None)
    return json.dumps({"seq": seq, "call": call})


def fast_shaped(key_json: str, seq: int | str, step: int) -> str:
    """A metric line in the exact shape of the sender's fast path, with this key text."""
    return (
        f'{{"seq":{seq},"call":{{"method":"POST","path":"write/experiment/metric","json":'
        f'{{"experimentKey":{key_json},"metricName":"loss","metricValue":1.0,"step":{step},'
        f'"timestamp":1700000000000}}}}}}'
    )


def steps(reader: Reader, project: str) -> list[int]:
    [row] = reader.experiments("local", project)
    return sorted(m["step"] for m in reader.metrics(row["experimentKey"], "loss"))


def test_damaged_lines_are_skipped_and_reported_everything_else_uploads(
    comet_env: ServerHandle, reader: Reader
) -> None:
    first = offline_run("damaged-a", 50)
    second = offline_run("damaged-b", 40)
    third = offline_run("damaged-c", 30)
    # the first run (uploaded first) gets every kind of damage in the middle of its log
    bad_a = damage(
        first,
        [
            "42",
            "[1,2]",
            '"text"',
            "null",
            metric_event(9001, 1000, path=True),  # an event missing its path
            metric_event(9002, 1001, method=True),
            json.dumps({"call": json.loads(metric_event(1, 1002))["call"]}),  # no seq
            json.dumps({"seq": 9003, "call": "POST write/experiment/metric"}),
            json.dumps({"seq": 9004, "op": "format_disk", "args": {}}),
            json.dumps({"seq": 9005}),
            json.dumps(
                {"seq": 9006, "call": {"method": "POST", "path": "write/experiment/metric"}}
            ),
            json.dumps(
                {
                    "seq": 9007,
                    "call": {
                        "method": "POST",
                        "path": "write/experiment/metric",
                        "json": {"experimentKey": "x" * 32, "metricValue": 1.0, "step": 1003},
                    },
                }
            ),
            "{not json at all",
            # shaped like the lines upload reads without parsing, but not JSON that json.loads
            # takes: a raw control character in the key, a seq past the integer digit limit
            fast_shaped('"x\x01"', 9008, 1004),
            fast_shaped('"' + "x" * 32 + '"', "9" * 5000, 1005),
        ],
        at=10,
    )
    # the second one: a repeated seq (the first copy is sent, the repeat is reported)
    events = (second / "events.jsonl").read_text().splitlines()
    bad_b = damage(second, [events[5]], at=20)
    proc = subprocess.run([CLI, "upload"], capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert proc.returncode == 0, out
    # every good event of every run arrived; none of the damaged ones did
    assert steps(reader, "damaged-a") == list(range(50))
    assert steps(reader, "damaged-b") == list(range(40))
    assert steps(reader, "damaged-c") == list(range(30))
    for project in ("damaged-a", "damaged-b", "damaged-c"):
        [row] = reader.experiments("local", project)
        assert reader.others(row["experimentKey"])["status"] == "success"
    # the summary of each damaged run gives the count and the line numbers
    line_a = next(ln for ln in out.splitlines() if str(first) in ln and "events sent" in ln)
    assert f"{len(bad_a)} damaged lines skipped" in line_a, out
    listed = [int(x) for x in re.findall(r"\d+", line_a.split("damaged lines skipped")[1])]
    assert listed[: len(bad_a)] == bad_a, line_a
    assert "complete" in line_a and "INCOMPLETE" not in line_a
    line_b = next(ln for ln in out.splitlines() if str(second) in ln and "events sent" in ln)
    assert f"1 damaged lines skipped (line {bad_b[0]}" in line_b, out
    line_c = next(ln for ln in out.splitlines() if str(third) in ln and "events sent" in ln)
    assert "damaged lines" not in line_c
    # each reason is said once, with the lines it applies to
    assert "not a JSON object" in out and "no path" in out and "not valid JSON" in out
    # a re-run has nothing left to do and does not fail
    again = subprocess.run([CLI, "upload"], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "Traceback" not in again.stdout + again.stderr
    assert steps(reader, "damaged-a") == list(range(50))


def test_meta_that_is_not_an_object_skips_only_that_run(
    comet_env: ServerHandle, reader: Reader
) -> None:
    broken = offline_run("meta-broken", 5)
    fine = offline_run("meta-fine", 5)
    (broken / "meta.json").write_text("[1, 2]")
    proc = subprocess.run([CLI, "upload"], capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    assert proc.returncode == 1  # the broken run is not complete
    assert f"{broken}" in out and "meta.json" in out
    assert steps(reader, "meta-fine") == list(range(5))
    assert "meta-broken" not in [p["projectName"] for p in reader.projects("local")]
    assert fine.exists()
