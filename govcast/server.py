"""Running the application: one web process, several sharing a port, or headless
worker/scheduler processes.

``govcast web --workers N`` starts N children that each bind the port with SO_REUSEPORT
(the kernel spreads connections over them). The parent only supervises: it restarts a
child that dies unexpectedly (with a growing pause, so a child that cannot start does not
spin) and, on SIGTERM/SIGINT, forwards the signal and waits. Each child then stops
accepting, lets requests in flight finish within ``server.shutdown_grace_seconds`` and
exits with status 0.

Worker processes stop claiming on SIGTERM and let calls in flight finish within the same
grace; a call still running after it is cancelled and its delivery is reconciled through
the channel's ``find`` when its lease runs out, so nothing is posted twice.
"""

from __future__ import annotations

import asyncio
import copyreg
import gc
import logging
import multiprocessing
import os
import signal
import sys
import time
import types
from collections.abc import Iterable
from multiprocessing.process import BaseProcess
from typing import Any

from aiohttp import web

from govcast import migrate, runtime
from govcast.app import create_app
from govcast.settings import Settings

log = logging.getLogger("govcast.server")

# A child that dies sooner than this after its start counts as a failed start.
_MIN_HEALTHY_SECONDS = 5.0
_MAX_RESTART_PAUSE = 30.0
_SUPERVISE_INTERVAL = 0.2


def upgrade_schema(settings: Settings) -> None:
    """Apply migrations (done automatically by ``serve``)."""
    migrate.upgrade(settings.database_url)


def _mappingproxy(values: dict[Any, Any]) -> types.MappingProxyType[Any, Any]:
    return types.MappingProxyType(values)


def _reduce_mappingproxy(proxy: types.MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return (_mappingproxy, (dict(proxy),))


# The frozen settings hold read-only mappings (accounts, offices); the spawned web
# children receive the settings by pickling, which mappingproxy does not support itself.
copyreg.pickle(types.MappingProxyType, _reduce_mappingproxy)


def run_web(settings: Settings, *, roles: Iterable[str], processes: int) -> int:
    """Serve HTTP; with several processes, each binds the port with SO_REUSEPORT."""
    roles = frozenset(roles)
    if processes == 1:
        _serve_one(settings, roles, reuse_port=False)
        return 0
    # Children would otherwise race to insert the configured offices on a fresh database.
    asyncio.run(_prepare(settings))
    return Supervisor(settings, roles, processes).run()


async def _prepare(settings: Settings) -> None:
    db = runtime.database(settings)
    try:
        await runtime.sync_offices(db, settings)
    finally:
        await db.dispose()


class Supervisor:
    """Keeps N web children alive until asked to stop."""

    def __init__(self, settings: Settings, roles: frozenset[str], processes: int) -> None:
        self.settings = settings
        self.roles = roles
        self.processes = processes
        self.context = multiprocessing.get_context("spawn")
        self.children: list[BaseProcess | None] = [None] * processes
        self.started_at: list[float] = [0.0] * processes
        self.failures: list[int] = [0] * processes
        self.next_start: list[float] = [0.0] * processes
        self.stopping = False
        self.exit_codes: list[int] = []

    def run(self) -> int:
        """Start the children, supervise them, and return 0 after a clean shutdown."""
        previous = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            for slot in range(self.processes):
                self._start(slot)
            while not self.stopping:
                self._supervise()
                time.sleep(_SUPERVISE_INTERVAL)
            return self._shutdown()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self.stopping = True
        self._signal_children(signum)

    def _signal_children(self, signum: int) -> None:
        for child in self.children:
            if child is not None and child.is_alive() and child.pid:
                try:
                    os.kill(child.pid, signum)
                except ProcessLookupError:
                    pass

    def _start(self, slot: int) -> None:
        child = self.context.Process(
            target=_serve_one,
            args=(self.settings, self.roles, True),
            name=f"govcast-web-{slot}",
            daemon=False,
        )
        child.start()
        self.children[slot] = child
        self.started_at[slot] = time.monotonic()
        log.info("web process started", extra={"pid": child.pid, "slot": slot})

    def _supervise(self) -> None:
        now = time.monotonic()
        for slot, child in enumerate(self.children):
            if child is None:
                if now >= self.next_start[slot]:
                    self._start(slot)
                continue
            if child.is_alive():
                if now - self.started_at[slot] > _MIN_HEALTHY_SECONDS:
                    self.failures[slot] = 0
                continue
            child.join()
            _forget_metrics(child.pid)
            self.failures[slot] += 1
            pause = min(_MAX_RESTART_PAUSE, 0.5 * 2 ** (self.failures[slot] - 1))
            log.error(
                "web process exited unexpectedly; restarting",
                extra={"pid": child.pid, "exit_code": child.exitcode, "restart_in": pause},
            )
            self.children[slot] = None
            self.next_start[slot] = now + pause

    def _shutdown(self) -> int:
        # Children drain for up to the grace period; allow a little beyond it, then kill.
        deadline = time.monotonic() + self.settings.server.shutdown_grace_seconds + 5.0
        codes: list[int] = []
        for child in self.children:
            if child is None:
                continue
            child.join(max(0.0, deadline - time.monotonic()))
            if child.is_alive():
                log.error("web process did not stop in time; killing", extra={"pid": child.pid})
                child.kill()
                child.join()
                codes.append(1)
            elif child.exitcode in (-signal.SIGTERM, -signal.SIGINT):
                codes.append(0)  # stopped by the forwarded signal before it could serve
            else:
                codes.append(abs(child.exitcode or 0))
            _forget_metrics(child.pid)
        self.exit_codes = codes
        log.info("govcast web stopped", extra={"exit_codes": ",".join(map(str, codes))})
        return max(codes, default=0)


def _forget_metrics(pid: int | None) -> None:
    # Multiprocess mode keeps per-pid files; live gauges of a dead process must go.
    if pid and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def freeze_heap_on_start(app: web.Application) -> None:
    """Once the application has started, keep its start-up heap out of full GC passes.

    A full (generation 2) collection walks every object the process holds: modules,
    SQLAlchemy's metadata, parsers, pools. Measured in the callback bench's server: 100 to
    160 ms per pass, the event loop stopped meanwhile, every request in flight waiting:
    that was the callback's p99. Start-up objects live as long as the process, so
    ``gc.freeze`` moves them where the collector no longer walks them (CPython's advice
    for long-running servers); later garbage is collected as before.
    """

    async def freeze(_: web.Application) -> None:
        gc.collect()
        gc.freeze()

    app.on_startup.append(freeze)


def _serve_one(settings: Settings, roles: frozenset[str], reuse_port: bool) -> None:
    from govcast import logs

    logs.configure(settings)
    app = create_app(settings, roles)
    freeze_heap_on_start(app)
    log.info(
        "govcast listening",
        extra={
            "host": settings.server.host,
            "port": settings.server.port,
            "roles": ",".join(sorted(roles)),
            "pid": os.getpid(),
        },
    )
    # run_app handles SIGTERM/SIGINT: it closes the listening socket, waits for requests
    # in flight up to the grace period, runs the cleanup contexts and returns normally.
    web.run_app(
        app,
        host=settings.server.host,
        port=settings.server.port,
        reuse_port=reuse_port or None,
        shutdown_timeout=settings.server.shutdown_grace_seconds,
        print=None,
        access_log=None,
        handle_signals=True,
    )
    sys.stdout.flush()


def run_headless(settings: Settings, *, roles: Iterable[str]) -> int:
    """Run the worker and/or scheduler without an HTTP listener until SIGTERM/SIGINT."""
    roles = frozenset(roles)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        # Listen before setting up: a stop asked for during start-up (connecting to the
        # database, starting the worker) is honoured as soon as start-up is done.
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        app = create_app(settings, roles)
        freeze_heap_on_start(app)
        runner = web.AppRunner(app, handle_signals=False)
        await runner.setup()  # runs the cleanup contexts: database, channels, worker ...
        log.info("govcast running", extra={"roles": ",".join(sorted(roles)), "pid": os.getpid()})
        await stop.wait()
        log.info("govcast stopping: draining deliveries in flight")
        for signum in (signal.SIGTERM, signal.SIGINT):
            # A second signal during the drain: give up waiting (leases make it safe).
            loop.add_signal_handler(signum, _hard_exit)
        await runner.cleanup()
        log.info("govcast stopped")

    asyncio.run(main())
    sys.stdout.flush()
    return 0


def _hard_exit() -> None:
    log.warning("second signal: exiting without waiting for deliveries in flight")
    os._exit(1)
