"""Synapse's logging for each process of a homeserver: one rotating file each."""

from __future__ import annotations

from typing import Any

from homeport.config.workers import WorkerSpec
from homeport.layout import HomeserverLayout


def render_log_config(layout: HomeserverLayout) -> dict[str, Any]:
    """Synapse's logging: one rotating file per homeserver, read by `homeport` for tails."""
    return {
        "version": 1,
        "formatters": {
            "precise": {
                "format": "%(asctime)s - %(name)s - %(lineno)d - %(levelname)s - "
                "%(request)s - %(message)s"
            }
        },
        "handlers": {
            "file": {
                "class": "logging.handlers.TimedRotatingFileHandler",
                "formatter": "precise",
                "filename": str(layout.log_file),
                "when": "midnight",
                "backupCount": 7,
                "encoding": "utf8",
            }
        },
        "loggers": {"synapse.storage.SQL": {"level": "INFO"}},
        "root": {"level": "INFO", "handlers": ["file"]},
        "disable_existing_loggers": False,
    }


def worker_log_config(files: HomeserverLayout, spec: WorkerSpec) -> dict[str, Any]:
    """The main process's logging, into the worker's own file."""
    config = render_log_config(files)
    config["handlers"]["file"]["filename"] = str(files.worker_log_file(spec.name))
    return config
