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


def _after_fork_in_child() -> None:
    """``os.register_at_fork`` hook: a forked child drops every experiment of its parent.

    Without this, a ``fork`` worker (``multiprocessing.Pool``, DataLoader workers) inherits the
    exit and SIGTERM handlers, ends the parent's copied experiment when it is terminated,
    blocks forever on a lock held at fork time and prints a false "could not be delivered"
    message. The child starts with no live experiment and no handlers; it may create its own.
    """
    global _hooks_installed, _crashed, _forked_warned
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
    if _hooks_installed:
        _hooks_installed = False
        atexit.unregister(end_all)
        if sys.excepthook is _excepthook and _previous_excepthook is not None:
            sys.excepthook = _previous_excepthook
        try:
            if _on_sigterm is not None and signal.getsignal(signal.SIGTERM) is _on_sigterm:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except (ValueError, OSError):
            pass


def on_fork_in_child(reset: Callable[[], None]) -> None:
    """Also run ``reset`` in a forked child (e.g. to forget the current experiment)."""
    _fork_resets.append(reset)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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

                def on_sigterm(signum: int, frame: Any) -> None:
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
