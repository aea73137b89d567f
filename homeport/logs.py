"""Structured logs for Homeport's own services: one JSON object per line."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
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


def log_to_file(path: Path, logger_name: str = "homeport") -> logging.Logger:
    logger = logging.getLogger(logger_name)
    handler: logging.Handler
    if os.environ.get(LOG_DESTINATION) == "stderr":
        handler = logging.StreamHandler(sys.stderr)
    else:
        ensure_dir(path.parent)
        handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
