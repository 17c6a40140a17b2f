"""Where the package's warnings go when the program has not configured logging.

A library should not configure logging, yet a user must see that the server is unreachable,
that the key was refused, that values were dropped or that events were not delivered. Python's
own answer is :data:`logging.lastResort`; we do the same, scoped to our logger: a handler on
the ``comet_callbacks`` logger that writes ``comet_callbacks: <message>`` (one line; only an
error that carries an exception adds its traceback) to the *current* ``sys.stderr``, and only
while no other handler would receive the record — i.e. neither our loggers nor the root
logger have handlers (``logging.basicConfig``,
``dictConfig``, a framework's set-up). Once the program configures logging, our records follow
that configuration and this handler stays silent. Silence us with
``logging.getLogger("comet_callbacks").setLevel(logging.ERROR)``.
"""

from __future__ import annotations

import logging
import re
import sys

__all__ = ["PREFIX", "StderrFallbackHandler", "install", "short_reason"]

PREFIX = "comet_callbacks: "


def _has_other_handler(logger: logging.Logger | None, own: logging.Handler) -> bool:
    """Would ``logger`` hand a record to any handler besides ``own`` and NullHandlers?

    The same walk as :meth:`logging.Logger.callHandlers`: up the hierarchy while records
    propagate (the root logger included).
    """
    while logger is not None:
        for h in logger.handlers:
            if h is not own and not isinstance(h, logging.NullHandler):
                return True
        if not logger.propagate:
            return False
        logger = logger.parent  # type: ignore[assignment]
    return False


class StderrFallbackHandler(logging.Handler):
    """Warnings to stderr as ``comet_callbacks: <message>`` while logging is unconfigured."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def format(self, record: logging.LogRecord) -> str:
        from .config import scrub  # records of child loggers skip the package logger's filter

        msg = record.getMessage()
        if msg.startswith(PREFIX):
            msg = msg[len(PREFIX) :]
        line = PREFIX + scrub(" ".join(msg.split("\n")))
        if record.exc_info and record.levelno >= logging.ERROR:  # a bug (e.g. in the server)
            line += "\n" + scrub(logging.Formatter().formatException(record.exc_info))
        return line

    def emit(self, record: logging.LogRecord) -> None:
        if _has_other_handler(logging.getLogger(record.name), self):
            return
        stream = sys.stderr  # looked up each time: pytest's capsys, redirect_stderr...
        if stream is None:  # pythonw
            return
        try:
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def install() -> StderrFallbackHandler:
    """Attach the fallback handler to the ``comet_callbacks`` logger (once)."""
    logger = logging.getLogger("comet_callbacks")
    for h in logger.handlers:
        if isinstance(h, StderrFallbackHandler):
            return h
    handler = StderrFallbackHandler()
    logger.addHandler(handler)
    return handler


_ERRNO = re.compile(r"\[Errno -?\d+\] ([^\"'()\]]+)")


def short_reason(exc: BaseException) -> str:
    """A connection failure in a few words (``Connection refused``, ``timed out``...).

    urllib3's messages nest the pool, the retry count and the cause; a user needs the cause.
    """
    text = str(exc)
    found = _ERRNO.findall(text)
    if found:
        return found[-1].strip().rstrip(".")
    low = text.lower()
    for words in ("timed out", "name or service not known", "connection refused", "ssl"):
        if words in low:
            return "SSL error" if words == "ssl" else words
    return type(exc).__name__
