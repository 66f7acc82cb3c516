"""structlog set-up: JSON lines, request-scoped context, never secrets.

Our own loggers render straight to the stream (the hot path: one line per
request). Records of other libraries (uvicorn, asyncpg, psycopg, anything using
the standard ``logging``) reach the root handler, whose ``ProcessorFormatter``
runs the same processors, so the stream is one format throughout.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from oneauth.settings import LOG_LEVELS

# Keys whose values are never written, whoever passes them to a logger.
SECRET_KEYS = frozenset(
    {
        "password",
        "new_password",
        "current_password",
        "token",
        "access_token",
        "refresh_token",
        "id_token",
        "code",
        "code_verifier",
        "client_secret",
        "secret",
        "authorization",
        "cookie",
        "set-cookie",
        "private_key",
        "master_key",
        "otp",
        # Personal data: logs travel further than the audit table.
        "email",
        "new_email",
        "old_email",
    }
)

_security_log = structlog.get_logger("oneauth.security")


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in SECRET_KEYS:
            event[key] = "[redacted]"
    return event


def level_number(level: str) -> int:
    """The stdlib level for a name of LOG_LEVELS; ValueError for anything else."""
    if level.lower() not in LOG_LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LOG_LEVELS)}, not {level!r}")
    return logging.getLevelNamesMapping()[level.upper()]


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced later)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _: Any) -> None:
        pass


def _stderr_logger(*_: Any) -> structlog.PrintLogger:
    return structlog.PrintLogger(sys.stderr)


def configure(log_format: str = "auto", level: str = "info") -> None:
    numeric = level_number(level)
    stream = sys.stderr
    renderer: Any
    if log_format == "console" or (log_format == "auto" and stream.isatty()):
        renderer = structlog.dev.ConsoleRenderer(colors=stream.isatty())
    else:
        renderer = structlog.processors.JSONRenderer()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=_stderr_logger,
        cache_logger_on_first_use=False,
    )
    handler = _Stderr()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    # uvicorn installs handlers of its own unless told otherwise (serve passes
    # log_config=None); drop any that exist so its records reach the root.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def security_event(event: str, **fields: Any) -> None:
    """A security-relevant event in the log stream (A1), besides any audit row.

    Logged at warning with ``security=True`` so alerting can select on it. Pass
    ids and hashes, never secrets or addresses in clear (_redact drops the known
    keys anyway).
    """
    _security_log.warning(event, security=True, **fields)
