"""The real app on a loopback port, for tests that need a real HTTP client or a browser.

`live_server` (session-scoped) runs `create_app(settings)` under uvicorn in a background thread with its
own event loop, against the test PostgreSQL and Valkey; it yields the base URL. `start_live_server`
does the same for any app/settings (e.g. an app pointed at a Redis that is down) and returns a handle to
stop it. `run_worker` runs the arq worker in a background thread the same way, for tests that need the
jobs to actually run. Import the fixture into a conftest.py: `from tests.live_server import live_server`.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from dataclasses import dataclass

import pytest
import uvicorn

from app.services import _free_port


@dataclass
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def start_live_server(app, *, timeout: float = 20.0) -> LiveServer:
    port = _free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on", ws="none"
    )
    server = uvicorn.Server(config)
    # uvicorn installs signal handlers only in the main thread; a thread's server has none to install.
    thread = threading.Thread(target=server.run, name=f"live-server-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"live server on port {port} did not start")
        time.sleep(0.02)
    return LiveServer(f"http://127.0.0.1:{port}", server, thread)


@pytest.fixture(scope="session")
def live_server(settings):
    from app.main import create_app

    handle = start_live_server(create_app(settings))
    yield handle.url
    handle.stop()


@dataclass
class WorkerThread:
    thread: threading.Thread
    loop: asyncio.AbstractEventLoop
    worker: object

    def stop(self) -> None:
        # The same path as SIGTERM for a worker process: finish or cancel running jobs, then return.
        self.loop.call_soon_threadsafe(self.worker.handle_sig, signal.SIGTERM)  # type: ignore[attr-defined]
        self.thread.join(timeout=15)


def run_worker(settings, **overrides) -> WorkerThread:
    """Start an arq worker (all of workers.settings' jobs) in a thread; stop() ends it."""
    from arq.worker import Worker

    from workers.settings import worker_settings

    loop = asyncio.new_event_loop()
    kwargs = worker_settings(settings)
    kwargs.update(overrides, handle_signals=False)
    holder: dict = {}

    def _run() -> None:
        asyncio.set_event_loop(loop)
        worker = Worker(**kwargs)
        holder["worker"] = worker
        try:
            loop.run_until_complete(worker.async_run())
        except asyncio.CancelledError:
            pass
        finally:
            loop.run_until_complete(worker.close())
            loop.close()

    thread = threading.Thread(target=_run, name="arq-worker", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while "worker" not in holder and time.monotonic() < deadline:
        time.sleep(0.01)
    return WorkerThread(thread, loop, holder.get("worker"))
