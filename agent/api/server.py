"""The control API's HTTP server: uvicorn serving the agent's ASGI app on its own socket,
inside the agent's event loop, stopped by the agent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable

import uvicorn
from loguru import logger

from agent.api.connections import guarded_protocol, resolve_http
from agent.api.fast_routes import create_asgi
from agent.api.guard import App
from agent.api.services import Services
from agent.config import ApiSettings
from agent.errors import ProvsyncError
from agent.listen import bind_socket


class _ApiServer(uvicorn.Server):
    """uvicorn inside our event loop: the agent, not uvicorn, owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@contextlib.asynccontextmanager
async def serve_api(
    api: ApiSettings, services: Services, shutdown_timeout: float
) -> AsyncIterator[None]:
    """Serve the control API on ``[api] host:port`` until the block ends; waits at most
    ``shutdown_timeout`` for open requests when it does.

    Raises:
        ProvsyncError: the port cannot be bound, or the server stopped while starting.
    """
    async with serve_asgi(api, create_asgi(services), shutdown_timeout, services.on_stop):
        logger.info(
            "web console on http://{}:{}/ui/ (`provsync console` prints a login link)",
            api.host,
            api.port,
        )
        yield


@contextlib.asynccontextmanager
async def serve_asgi(
    api: ApiSettings,
    app: App,
    shutdown_timeout: float,
    on_stop: Iterable[Callable[[], None]] = (),
    what: str = "control API",
) -> AsyncIterator[None]:
    """Serve ``app`` on ``[api] host:port`` with the API's connection guards (header
    deadline, connection cap) until the block ends (the control API, or a standby's).

    Raises:
        ProvsyncError: the port cannot be bound, or the server stopped while starting.
    """
    sock = bind_socket(api.host, api.port)
    # The agent routes stdlib logging into loguru at level 0, so uvicorn thinks TRACE
    # is wanted: it would wrap the app in its message logger and build a log record
    # for each ASGI message of every request, only for loguru to drop them.
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.setLevel(max(uvicorn_log.getEffectiveLevel(), logging.DEBUG))
    http = resolve_http(api.http)
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        http=guarded_protocol(api.header_timeout, api.max_connections, http),
    )
    server = _ApiServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="control-api")
    while not server.started and not task.done():  # noqa: ASYNC110 - uvicorn has no started event
        await asyncio.sleep(0.02)
    if task.done():
        sock.close()
        task.result()
        raise ProvsyncError(f"{what} stopped while starting")
    logger.info("{} on http://{}:{} ({})", what, api.host, api.port, http)
    try:
        yield
    finally:
        for stop in on_stop:
            stop()
        server.should_exit = True
        try:
            await asyncio.wait_for(task, shutdown_timeout)
        except TimeoutError:
            task.cancel()
        sock.close()
