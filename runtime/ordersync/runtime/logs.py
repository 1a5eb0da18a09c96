"""One log format for every ordersync process (set once by the CLI, and by a spawned child process), with
passwords in connection URLs and strings redacted from every line and traceback it prints."""

from __future__ import annotations

import logging
import re
import sys
import traceback
from types import TracebackType

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# user:password@ in a URL, password=... in a libpq key=value string (quoted or not).
_URL_PASSWORD = re.compile(r"(\w+:/+[^/\s:@'\"]*:)[^@\s'\"]+@")
_KEYWORD_PASSWORD = re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'\"]+)", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every password of a connection URL or string replaced by ``***``."""
    return _KEYWORD_PASSWORD.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


class Redacting(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))


def configure_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format=FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(Redacting(FORMAT))
    sys.excepthook = _excepthook  # an uncaught error's traceback is printed redacted too
