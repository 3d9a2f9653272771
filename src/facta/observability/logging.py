"""Structured logs: one JSON object per line, carrying the ids of the work in progress.

Inside a command every log line gets its ``stream``, ``correlation_id``, ``causation_id``
(and ``command_id``); inside a projection or relay batch its ``projection`` or ``relay``;
anywhere a span is active its ``trace_id`` and ``span_id``, so a log line leads to its trace.
``extra=`` keys of a logging call are kept. The ids are only collected once
:func:`configure_logging` (or :func:`enable`) ran, so logging costs nothing before.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import IO, Any

import msgspec
from opentelemetry import trace

_ids: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "facta_log_ids", default=None
)
_enabled = False

# The attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


def enabled() -> bool:
    """Whether the ids of commands and batches are being collected for log lines."""
    return _enabled


def enable(on: bool = True) -> None:
    """Collect (or stop collecting) the ids of commands and batches for log lines."""
    global _enabled
    _enabled = on


def bind(**ids: Any) -> contextvars.Token[Mapping[str, Any] | None]:
    """Add ``ids`` to every log line of the current context; pass the token to :func:`unbind`."""
    current = _ids.get()
    return _ids.set({**current, **ids} if current else ids)


def unbind(token: contextvars.Token[Mapping[str, Any] | None]) -> None:
    """Undo a :func:`bind`."""
    _ids.reset(token)


def log_context() -> Mapping[str, Any]:
    """The ids bound to the current context (empty outside a command or batch)."""
    return _ids.get() or {}


def _default(value: Any) -> Any:
    return repr(value)


_encode = msgspec.json.Encoder(enc_hook=_default).encode


class JsonFormatter(logging.Formatter):
    """Formats a log record as one line of JSON: ``time``, ``level``, ``logger``,
    ``message``, the bound ids, ``trace_id``/``span_id`` of the active span, ``extra`` keys,
    and ``exception`` (the formatted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line (without the newline)."""
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(log_context())
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            line["trace_id"] = format(context.trace_id, "032x")
            line["span_id"] = format(context.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return _encode(line).decode()


def configure_logging(
    level: int | str = logging.INFO, *, stream: IO[str] | None = None, logger: str = ""
) -> logging.Handler:
    """Log JSON lines to ``stream`` (default stderr) from ``logger`` (default the root) at
    ``level``, and start collecting ids. Returns the handler it added (remove it to undo)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    target = logging.getLogger(logger)
    target.addHandler(handler)
    target.setLevel(level)
    enable()
    return handler
