"""Running the app under uvicorn: in the foreground (the CLI) or in a thread (tests).

uvicorn owns graceful shutdown: on SIGINT/SIGTERM (or ``should_exit``) it stops
accepting connections, lets requests in flight finish, then runs the app's
lifespan shutdown, which drains the batcher.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 30
LIMIT_CONCURRENCY = 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


def allowed_hosts_for(host: str) -> list[str] | None:
    """Host headers to accept: loopback names for a loopback bind, else any (None)."""
    return LOOPBACK_HOSTS if is_loopback(host) else None


def uvicorn_config(app: Any, host: str, port: int, **overrides: Any) -> uvicorn.Config:
    """uvicorn settings for flipkd: lifespan on, bounded connections, no server header."""
    settings: dict[str, Any] = {
        "host": host,
        "port": port,
        "lifespan": "on",
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_S,
        "limit_concurrency": LIMIT_CONCURRENCY,
        "server_header": False,
        "proxy_headers": False,
        "log_config": None,
    }
    settings.update(overrides)
    return uvicorn.Config(app, **settings)


def run_server(app: Any, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``app`` until SIGINT/SIGTERM, then drain and return."""
    if not is_loopback(host):
        log.warning("listening on %s: reachable from other machines", host)
    uvicorn.Server(uvicorn_config(app, host, port)).run()


@dataclass
class BackgroundServer:
    """A server started by :func:`background_server`."""

    server: uvicorn.Server
    thread: threading.Thread
    url: str

    def stop(self, timeout: float = 30.0) -> None:
        """Ask uvicorn to shut down gracefully and wait for it."""
        self.server.should_exit = True
        self.thread.join(timeout)


@contextlib.contextmanager
def background_server(
    app: Any, host: str = "127.0.0.1", port: int = 0, startup_timeout: float = 30.0
) -> Iterator[BackgroundServer]:
    """Run ``app`` in a thread on ``host:port`` (0 = a free port) until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host, bound_port, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError(f"server on {host}:{bound_port} did not start")
        time.sleep(0.01)
    running = BackgroundServer(server, thread, f"http://{host}:{bound_port}")
    try:
        yield running
    finally:
        running.stop()
        sock.close()
