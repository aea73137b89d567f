"""Readers of the audit store while the bot records: exporters and a status poller.

Each reader is a process of its own, as an administrator's export script or a
monitoring system would be, reading until a stop file appears; then it writes
what it saw (JSON) for the test or the bench that started it:

    python -m tests.audit_readers export CONFIG SERVER ROOM STOP OUT
    python -m tests.audit_readers status CONFIG SERVER ROOM STOP OUT

An exporter runs what `homeport audit export --room ROOM` runs (every room
when ROOM is empty), again and again (opening the store each time), and notes
when it first saw each event: an upper bound of when that event became
readable. The poller runs what `homeport status` runs; its count of recorded
rooms is None whenever the store could not be read.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from homeport.audit import store
from homeport.audit.export import write_jsonl
from homeport.config.loader import load_deployment
from homeport.runtime.status import gather_status
from homeport.store.database import open_store

ROOT = Path(__file__).resolve().parent.parent
PAUSE_S = 0.1  # between two reads of one reader: the store is read all the time


def export_loop(config: Path, server: str, room: str, stop: Path, started: Path) -> dict[str, Any]:
    deployment = load_deployment(config)[0]
    seen: dict[str, float] = {}
    exports, errors = 0, []

    def noted(events: Iterator[store.Recorded]) -> Iterator[store.Recorded]:
        for event in events:
            seen.setdefault(event.event_id, time.time())
            yield event

    while True:
        # A pass that starts after the stop is asked for is the last: it reads everything
        # stored before then, so the readers' `seen` never misses what the test waited for.
        last = stop.exists()
        try:
            engine = open_store(deployment)
            try:
                with open(os.devnull, "w") as sink:
                    events = store.stream(engine, server, store.Filters(room_id=room or None))
                    write_jsonl(noted(events), sink)
            finally:
                engine.dispose()
            exports += 1
        except Exception as error:  # reported to the test, which fails on any
            errors.append(repr(error)[:500])
        started.touch()
        if last:
            break
        time.sleep(PAUSE_S)
    return {"reads": exports, "errors": errors, "seen": seen, "cpu_s": time.process_time()}


def status_loop(config: Path, server: str, _room: str, stop: Path, started: Path) -> dict[str, Any]:
    deployment = load_deployment(config)[0]
    polls, errors = 0, []
    while not stop.exists():
        try:
            status = asyncio.run(gather_status(deployment))
            audit = status["homeservers"][server]["audit"]
            if audit is None or audit["audited_rooms"] is None:
                errors.append("status could not read the store")
            polls += 1
        except Exception as error:
            errors.append(repr(error)[:500])
        started.touch()
        time.sleep(PAUSE_S)
    return {"reads": polls, "errors": errors, "seen": {}, "cpu_s": time.process_time()}


LOOPS = {"export": export_loop, "status": status_loop}


@dataclass(frozen=True)
class ReadersReport:
    exports: int
    polls: int
    errors: list[str]
    seen: dict[str, float]  # event ID: when a reader first saw it (seconds since the epoch)
    cpu_s: float  # the readers' CPU time, all of them
    wall_s: float  # from their start until they stopped


class Readers:
    """`exporters` exporters and one status poller, reading from the start of the `with`
    block (each has read once) until `stop()`."""

    def __init__(self, config: Path, server: str, room: str, folder: Path, exporters: int = 4):
        folder.mkdir(parents=True, exist_ok=True)
        self._stop = folder / "stop"
        self._stop.unlink(missing_ok=True)
        self._kinds = ["export"] * exporters + ["status"]
        self._outs = [folder / f"{kind}-{n}.json" for n, kind in enumerate(self._kinds)]
        self._args = [str(config), server, room, str(self._stop)]
        self._processes: list[subprocess.Popen[bytes]] = []
        self._started = 0.0
        self.report: ReadersReport | None = None

    def __enter__(self) -> Readers:
        self._started = time.monotonic()
        for kind, out in zip(self._kinds, self._outs, strict=True):
            command = [sys.executable, "-m", "tests.audit_readers", kind, *self._args, str(out)]
            self._processes.append(subprocess.Popen(command, cwd=ROOT))
        deadline = time.monotonic() + 60
        while not all(_started(out).exists() for out in self._outs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self._processes):
                self.stop()
                raise AssertionError("the readers did not start")
            time.sleep(0.1)
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def stop(self) -> ReadersReport:
        if self.report is not None:
            return self.report
        self._stop.touch()
        for process in self._processes:
            process.wait(timeout=60)
        results = [json.loads(out.read_text()) for out in self._outs if out.exists()]
        seen: dict[str, float] = {}
        for result in results:
            for event_id, at in result["seen"].items():
                seen[event_id] = min(at, seen.get(event_id, at))
        self.report = ReadersReport(
            exports=sum(r["reads"] for r in results if r["kind"] == "export"),
            polls=sum(r["reads"] for r in results if r["kind"] == "status"),
            errors=[e for r in results for e in r["errors"]]
            + [f"a reader exited {p.returncode}" for p in self._processes if p.returncode],
            seen=seen,
            cpu_s=sum(r["cpu_s"] for r in results),
            wall_s=time.monotonic() - self._started,
        )
        return self.report


def _started(out: Path) -> Path:
    return out.with_suffix(".started")


def main() -> None:
    kind, config, server, room, stop, out = sys.argv[1:]
    result = LOOPS[kind](Path(config), server, room, Path(stop), _started(Path(out)))
    Path(out).write_text(json.dumps({"kind": kind, **result}))


if __name__ == "__main__":
    main()
