"""Structured logs for Homeport's own services: one JSON object per line."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from homeport.files import ensure_dir

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


# In a container the platform collects standard error: `HOMEPORT_LOG=stderr`
# (the Kubernetes rendering sets it) sends the service's log there instead.
LOG_DESTINATION = "HOMEPORT_LOG"


# The hosted service a task runs for, in the process that hosts several
# (`homeport.supervision.host_process`): each service's log file takes only its own
# records. Unset in a process that runs one service.
SERVICE: ContextVar[str | None] = ContextVar("homeport_service", default=None)


class _OneService(logging.Filter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        return SERVICE.get() == self.service


def log_to_file(path: Path, logger_name: str = "homeport") -> logging.Logger:
    """JSON lines from `logger_name` into `path`; once per file, however often a hosted
    service starts again, and only the calling service's records where several share
    the process."""
    logger = logging.getLogger(logger_name)
    service = SERVICE.get()
    to_stderr = os.environ.get(LOG_DESTINATION) == "stderr"
    for existing in logger.handlers:
        if getattr(existing, "homeport_log", None) == (str(path), service, to_stderr):
            return logger
    handler: logging.Handler
    if to_stderr:
        handler = logging.StreamHandler(sys.stderr)
    else:
        ensure_dir(path.parent)
        handler = logging.FileHandler(path, encoding="utf-8")
    handler.homeport_log = (str(path), service, to_stderr)  # type: ignore[union-attr]
    handler.setFormatter(JsonFormatter())
    if service is not None:
        handler.addFilter(_OneService(service))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
