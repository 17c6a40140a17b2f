"""Fork safety: a forked child drops the parent's experiment (issue 16.2).

An experiment is alive and logging from a thread (with output capture on) while the main
thread runs ``fork``-context ``multiprocessing.Pool`` rounds, the usual DataLoader-style worker
pool whose workers never touch the tracker. ``Pool``'s context manager ends with
``terminate()``, which sends SIGTERM to the workers. Before the fix the children inherited the
exit and SIGTERM handlers, called ``end()`` on their copy of the parent's experiment, blocked on
a lock held at fork time (rounds hung forever) and printed a false "events could not be
delivered" message. Everything runs in a real subprocess; a watchdog counts a round as hung
after a timeout and kills its workers, so a regression fails instead of hanging the suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from quiet import quiet_env

ROUNDS = 25
ROUND_TIMEOUT = 20.0

SCRIPT = """
import json, logging, multiprocessing as mp, os, signal, sys, threading, time
import comet_callbacks

logging.basicConfig(level=logging.WARNING, format="%(process)d %(message)s")
ROUNDS, ROUND_TIMEOUT, OUT = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]


def work(x):
    return x * x


def child_logs(exp, key_file):
    exp.log_metric("from_child", 1.0, step=1)
    exp.log_metric("from_child", 2.0, step=2)
    exp.log_parameter("child_param", 1)
    exp.flush(5)
    exp.end()
    own = comet_callbacks.start(project_name="fork-child")  # a child may have its own
    own.log_metric("child_own", 5.0, step=1)
    own.end()
    with open(key_file, "w") as fh:
        fh.write(own.key)


exp = comet_callbacks.start(project_name="fork")
stop = threading.Event()
logged = []


def keep_logging():
    i = 0
    while not stop.is_set():
        exp.log_metric("loss", float(i), step=i)
        i += 1
        if i % 10 == 0:
            time.sleep(0.002)  # a few thousand points a second
        if i % 500 == 0:
            print("progress", i)  # goes through the output capture
    logged.append(i)


writer = threading.Thread(target=keep_logging)
writer.start()
ctx = mp.get_context("fork")
hung = []
for r in range(ROUNDS):
    def on_hang(r=r):
        hung.append(r)
        for p in mp.active_children():
            p.kill()
    watchdog = threading.Timer(ROUND_TIMEOUT, on_hang)
    watchdog.start()
    with ctx.Pool(2) as pool:  # __exit__ is terminate(): SIGTERM to the workers
        assert pool.map(work, range(8)) == [x * x for x in range(8)]
    watchdog.cancel()
stop.set()
writer.join()

# a multiprocessing child that logs to the parent's experiment, then calls end()
p = ctx.Process(target=child_logs, args=(exp, OUT + ".child"))
p.start()
p.join(ROUND_TIMEOUT)
process_rc = p.exitcode
if p.is_alive():
    p.kill()
# a bare os.fork() child that logs, then exits normally (atexit runs, buffers are flushed)
sys.stdout.flush()
sys.stderr.flush()
pid = os.fork()
if pid == 0:
    exp.log_metric("from_child", 3.0, step=3)
    exp.log_metric("from_child", 4.0, step=4)
    sys.exit(0)
deadline = time.monotonic() + ROUND_TIMEOUT
while True:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done or time.monotonic() > deadline:
        break
    time.sleep(0.05)
if not done:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    fork_rc = "hung"
else:
    fork_rc = os.waitstatus_to_exitcode(status)

exp.log_metric("after_children", 1.0, step=0)
run_path = exp.offline_path
exp.end()
with open(OUT, "w") as fh:
    json.dump(
        {
            "key": exp.key,
            "hung": hung,
            "logged": logged[0],
            "process_rc": process_rc,
            "fork_rc": fork_rc,
            "run_path": run_path,
        },
        fh,
    )
"""


def test_fork_pools_under_active_logging_never_hang(comet_env, reader, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    env = {**os.environ, **quiet_env(timeout_cleaning=30, auto_log_output_logger=True)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT), str(ROUNDS), str(ROUND_TIMEOUT), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=ROUNDS * ROUND_TIMEOUT + 120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads(out.read_text())
    err = proc.stderr
    assert res["hung"] == [], f"hung rounds: {res['hung']}\n{err[-3000:]}"
    # no child ended the parent's experiment or claimed that its events were lost
    assert "could not be delivered" not in err, err[-3000:]
    assert "comet-callbacks upload" not in err, err[-3000:]
    assert res["process_rc"] == 0 and res["fork_rc"] == 0, res
    # logging from a forked child is a no-op with exactly one warning per child process
    warnings = [ln for ln in err.splitlines() if "forked child process" in ln]
    assert len(warnings) == 2, err[-3000:]
    assert len({ln.split()[0] for ln in warnings}) == 2  # two different pids
    assert "not logged" in warnings[0] and str(os.getpid()) not in warnings[0].split()[0]
    # the parent's experiment: every point exactly once, ended by the parent as a success
    key = res["key"]
    steps = sorted(m["step"] for m in reader.metrics(key, "loss"))
    assert steps == list(range(res["logged"])), (len(steps), res["logged"])
    assert reader.metrics(key, "from_child") == []
    assert "child_param" not in reader.parameters(key)
    assert [m["metricValue"] for m in reader.metrics(key, "after_children")] in (["1"], ["1.0"])
    assert reader.others(key)["status"] == "success"
    assert reader.metadata(key)["running"] is False
    # a forked child can run its own experiment
    own = (tmp_path / "result.json.child").read_text()
    assert own != key and [m["step"] for m in reader.metrics(own, "child_own")] == [1]
    assert reader.others(own)["status"] == "success"
    # the run folder was removed by the parent after delivery: no child re-created or kept it
    assert not Path(res["run_path"]).exists()
