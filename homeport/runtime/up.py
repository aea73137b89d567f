"""`homeport up`, start to end: claim the data folder, migrate the store, run every service.

The command line checks the file and draws progress; this module owns the
order of things, so that nothing starts when anything is wrong: the run lock
is taken, the store migrated and every service's port claimed before the
first process starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from homeport.config.deployment import Deployment
from homeport.errors import AlreadyRunningError
from homeport.layout import DeploymentLayout
from homeport.logs import log_to_file
from homeport.runtime.applied import record_applied
from homeport.runtime.registry import service_context, services
from homeport.store.database import create_store_engine, store_url
from homeport.store.migrate import migrate
from homeport.supervision.service import Service
from homeport.supervision.state import RunLock
from homeport.supervision.supervisor import Reporter, Supervisor
from homeport.trust import client_ssl_context

log = logging.getLogger("homeport")

Watch = Callable[[Supervisor, "asyncio.Task[None]"], Coroutine[Any, Any, None]]


def refuse_if_running(layout: DeploymentLayout, config_path: Path) -> None:
    if layout.data_dir.exists() and (pid := RunLock(layout).holder()) is not None:
        raise AlreadyRunningError(
            f"this deployment is already running (homeport up, pid {pid}); "
            f"see `homeport status -c {config_path}`"
        )


def migrate_store(deployment: Deployment) -> None:
    engine = create_store_engine(store_url(deployment))
    try:
        migration = migrate(engine)
    finally:
        engine.dispose()
    if migration.changed:
        log.info("store migrated", extra={"before": migration.before, "after": migration.after})


def run_up(deployment: Deployment, config_path: Path, reporter: Reporter, watch: Watch) -> None:
    """Run every service in the foreground until a signal stops them (or one never starts).

    `watch` is the command line's view of the running supervisor: it returns
    once the supervisor's task has ended.
    """
    layout = DeploymentLayout(deployment.data_dir)
    # `stop`/`start` wake `up` with SIGUSR1 as soon as the lock names its pid,
    # which may be before the supervisor listens: never die of it meanwhile
    # (the supervisor reads the held services when it starts listening).
    signal.signal(signal.SIGUSR1, lambda _signum, _frame: None)
    lock = RunLock(layout)
    if not lock.acquire():
        raise AlreadyRunningError("this deployment was started by another `homeport up` just now")
    try:
        log_to_file(layout.supervisor_log)
        migrate_store(deployment)
        context = service_context(config_path, layout, client_ssl_context(deployment))
        running = services(deployment, context)
        with contextlib.ExitStack() as claimed:
            for service in running:
                service.prepare()
                claimed.callback(service.close)
            record_applied(deployment, list(deployment.homeservers))
            asyncio.run(_supervise(running, layout, reporter, watch))
    finally:
        lock.release()


async def _supervise(
    running: list[Service], layout: DeploymentLayout, reporter: Reporter, watch: Watch
) -> None:
    supervisor = Supervisor(running, layout, reporter)
    task = asyncio.create_task(supervisor.run())
    await watch(supervisor, task)
