"""The one logging setup of every daemon and client: JSON lines or plain text on stderr, never a token.

JSON (the default, `--log-format json`) is one object per line, with the standard fields named as
the Elastic Common Schema names them, then the event's own fields, flat:

    {"@timestamp": "2025-05-01T12:00:00.123Z", "log.level": "info", "log.logger": "proxylistener",
     "message": "register from 127.0.0.1: ok", "tool": "mytool", "outcome": "ok", "ms": 1.8}

An exception adds `error.type`, `error.message` and `error.stack_trace`. Text (`--log-format
text`) is for a person at a terminal:

    2025-05-01T12:00:00.123Z INFO proxylistener: register from 127.0.0.1: ok tool=mytool outcome=ok

An event's fields are passed as `event(logger, message, **fields)` (or `extra={"fields": {...}}`).

Secrets never reach the output: the value of a field whose name says it is secret (token,
password, ...) is replaced, and anything anywhere in a line (message, fields, traceback) shaped
like a tool token (core/tokens.py) loses its MAC, the only secret part: `tf1.mytool.0.[REDACTED]`.
"""

from __future__ import annotations

import abc
import argparse
import functools
import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from toolforgectl.core import tokens

FORMATS = ("json", "text")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
REDACTED = "[REDACTED]"
SECRET_FIELD = re.compile(r"token|passw|secret|authorization|cookie|api_?key|credential", re.IGNORECASE)
_STANDARD = ("@timestamp", "log.level", "log.logger", "message")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The logging options every daemon and client takes."""
    parser.add_argument(
        "--log-format", choices=FORMATS, default="json", help="json lines (default) or plain text"
    )
    parser.add_argument("--log-level", choices=LEVELS, default="INFO", help="least severe level to log")


def setup(log_format: str = "json", level: str = "INFO", stream: TextIO | None = None) -> None:
    """Send every logger's records (ours and the libraries') to `stream` (stderr) in `log_format`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)


def event(logger: logging.Logger, message: str, level: int = logging.INFO, /, **fields: Any) -> None:
    """Log `message` at `level` with the structured `fields` of the event."""
    logger.log(level, message, extra={"fields": fields})


def redact(text: str) -> str:
    """`text` with the MAC of anything shaped like a tool token replaced."""
    return tokens.SHAPE.sub(lambda found: f"{found['prefix']}{REDACTED}", text)


class _Formatter(logging.Formatter, abc.ABC):
    """What both formats share: the fields, the timestamp, and redaction of the finished line."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(self.render(record))

    @abc.abstractmethod
    def render(self, record: logging.LogRecord) -> str:
        """The line for `record`, before redaction."""

    @staticmethod
    def fields(record: logging.LogRecord) -> dict[str, Any]:
        given = getattr(record, "fields", None) or {}
        return {
            name: REDACTED if _secret(name) else value
            for name, value in given.items()
            if name not in _STANDARD
        }

    @staticmethod
    def timestamp(record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, tz=UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(_Formatter):
    """One JSON object per line, standard fields named as in ECS."""

    def render(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "@timestamp": self.timestamp(record),
            "log.level": record.levelname.lower(),
            "log.logger": record.name,
            "message": record.getMessage(),
            **self.fields(record),
        }
        if record.exc_info and record.exc_info[1] is not None:
            doc["error.type"] = type(record.exc_info[1]).__name__
            doc["error.message"] = str(record.exc_info[1])
            doc["error.stack_trace"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


class TextFormatter(_Formatter):
    """`<time> <LEVEL> <logger>: <message> key=value ...`, then any traceback."""

    def render(self, record: logging.LogRecord) -> str:
        line = f"{self.timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}"
        pairs = " ".join(f"{name}={_text_value(value)}" for name, value in self.fields(record).items())
        line = f"{line} {pairs}" if pairs else line
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


@functools.cache
def _secret(name: str) -> bool:
    """Whether a field called `name` holds a secret (cached: a daemon uses a handful of names)."""
    return SECRET_FIELD.search(name) is not None


def _text_value(value: Any) -> str:
    text = str(value)
    return text if text and not re.search(r"[\s\"=]", text) else json.dumps(text)
