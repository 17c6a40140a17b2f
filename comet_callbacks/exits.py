"""What happens to the live experiments when the process ends, crashes, is terminated or forks.

At interpreter exit every live experiment is ended (``failed`` after an uncaught exception,
``interrupted`` on Ctrl-C or SIGTERM), so a script never leaves a run ``running``. A forked
child drops its parent's experiments and handlers. Installed once, by the first experiment,
chaining any existing hooks; nothing happens on import but the fork hook.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable
from typing import Any

__all__ = ["end_all", "install", "live", "on_fork_in_child", "warn_forked_once"]

log = logging.getLogger("comet_callbacks")

#: The experiments of this process that have not ended.
live: weakref.WeakSet[Any] = weakref.WeakSet()
_fork_resets: list[Callable[[], None]] = []
_hooks_installed = False
_crashed = False
_on_sigterm: Any = None
_excepthook: Any = None
_previous_excepthook: Any = None
_forked_warned = False


def warn_forked_once() -> None:
    """One warning when a forked child logs to its parent's experiment."""
    global _forked_warned
    if not _forked_warned:
        _forked_warned = True
        log.warning(
            "comet_callbacks: log_* calls in a forked child process (pid %d) are not logged: "
            "the experiment belongs to the parent process (pid %d). Log from the parent, or "
            "create a new Experiment in the child.",
            os.getpid(),
            os.getppid(),
        )


#: Module-level locks replaced in a forked child (never waited for: see _after_fork_in_child).
_FORK_LOCKS = (
    ("comet_callbacks.rest.delivery", "_support_lock"),
    ("comet_callbacks.capture.system", "_nvml_lock"),
    ("comet_callbacks.config", "_secrets_lock"),
)


def _after_fork_in_child() -> None:
    """``os.register_at_fork`` hook: a forked child drops every experiment of its parent.

    Without this, a ``fork`` worker (``multiprocessing.Pool``, DataLoader workers) inherits the
    exit and SIGTERM handlers, ends the parent's copied experiment when it is terminated,
    blocks forever on a lock held at fork time and prints a false "could not be delivered"
    message. The child starts with no live experiment and no handlers; it may create its own.
    """
    global _hooks_installed, _crashed, _forked_warned, _sigterm_parked
    _sigterm_parked = False  # the child keeps the default SIGTERM action set before the fork
    if _hooks_installed:  # first: whatever happens next, SIGTERM ends the child at once
        _hooks_installed = False
        try:
            if _on_sigterm is not None and signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except (ValueError, OSError):
            pass
        atexit.unregister(end_all)
        if sys.excepthook is _excepthook and _previous_excepthook is not None:
            sys.excepthook = _previous_excepthook
    # module-level locks another thread may have held at fork time (a batch answer records
    # the server's batch support under one): a child that starts its own experiment would
    # wait for them forever
    for module, name in _FORK_LOCKS:
        mod = sys.modules.get(module)  # no import machinery in a fork hook
        if mod is not None and hasattr(mod, name):
            setattr(mod, name, threading.Lock())
    for exp in list(live):
        try:
            exp._forget_after_fork()
        except Exception:
            pass
    live.clear()
    for reset in _fork_resets:
        reset()
    _crashed = False
    _forked_warned = False


_sigterm_parked = False


def _before_fork() -> None:
    """Fork with the default SIGTERM action, restored in the parent right after.

    A child inherits the parent's signal dispositions. With our Python-level handler, a
    SIGTERM that reaches the child before its interpreter has finished the fork (a pool
    terminated while a slow worker is still starting) is swallowed: the worker never dies
    and ``Pool.terminate`` waits forever. With the default action the kernel ends it at once.
    Only possible from the main thread; elsewhere the handler checks the pid instead.
    """
    global _sigterm_parked
    if _on_sigterm is None or threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is _on_sigterm:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _sigterm_parked = True
    except (ValueError, OSError):
        pass


def _after_fork_in_parent() -> None:
    global _sigterm_parked
    if _sigterm_parked:
        _sigterm_parked = False
        try:
            signal.signal(signal.SIGTERM, _on_sigterm)
        except (ValueError, OSError):
            pass


def on_fork_in_child(reset: Callable[[], None]) -> None:
    """Also run ``reset`` in a forked child (e.g. to forget the current experiment)."""
    _fork_resets.append(reset)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def install() -> None:
    """End every live experiment at interpreter exit; an uncaught exception marks it failed;
    SIGTERM ends it as interrupted. Installed once, chaining any existing hooks."""
    global _hooks_installed, _on_sigterm, _excepthook, _previous_excepthook
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(end_all)
    previous_hook = _previous_excepthook = sys.excepthook

    def excepthook(tp: Any, value: Any, tb: Any) -> None:
        global _crashed
        _crashed = True
        status = "interrupted" if issubclass(tp, KeyboardInterrupt) else "failed"
        end_all(status)
        previous_hook(tp, value, tb)

    sys.excepthook = _excepthook = excepthook
    if threading.current_thread() is threading.main_thread():
        try:
            if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None):
                owner = os.getpid()

                def on_sigterm(signum: int, frame: Any) -> None:
                    if os.getpid() == owner:  # never in a forked child: it owns nothing
                        end_all("interrupted")
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    os.kill(os.getpid(), signal.SIGTERM)

                signal.signal(signal.SIGTERM, on_sigterm)
                _on_sigterm = on_sigterm
        except (ValueError, OSError):
            pass


def end_all(status: str | None = None) -> None:
    """End every live experiment: ``status``, else failed after an uncaught exception."""
    for exp in list(live):
        try:
            exp.end(status or ("failed" if _crashed else "success"))
        except Exception as exc:
            log.debug("comet_callbacks: ending at exit failed: %r", exc)
