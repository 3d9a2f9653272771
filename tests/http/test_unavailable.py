"""The store goes away and comes back: 503 with Retry-After meanwhile, then the service
recovers by itself. PostgreSQL is reached through a TCP proxy that the test cuts and restores.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.http.conftest import drop_schema, postgres_store_url, start_server


class Proxy:
    """Forwards 127.0.0.1:port to a target; ``cut()`` drops every connection and refuses new
    ones until ``restore()``."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = 0
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_WR)


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    running = Proxy(("127.0.0.1", 5432))
    running.restore()
    yield running
    running.cut()


def wait_for(client: httpx.Client, status: int, method: str, path: str, **kw: object) -> None:
    deadline = time.monotonic() + 20
    last = None
    while time.monotonic() < deadline:
        last = client.request(method, path, **kw)  # type: ignore[arg-type]
        if last.status_code == status:
            return
        time.sleep(0.2)
    raise AssertionError(f"{method} {path} never answered {status}: {last and last.text}")


def test_an_unreachable_store_is_503_and_the_service_recovers(proxy: Proxy, tmp_path: Path) -> None:
    direct = urlsplit(postgres_store_url())
    store_url = direct._replace(netloc=f"postgres@127.0.0.1:{proxy.port}").geturl()
    server = start_server(store_url, tmp_path)
    try:
        with server.client(timeout=15) as client:
            account = "/accounts/acc-outage"
            opened = client.post(
                account, json={"type": "OpenAccount", "owner": "Hal", "initial_balance": 10.0}
            )
            assert opened.status_code == 200, opened.text

            proxy.cut()
            # The first request may find the connections dropped, later ones find no server.
            wait_for(client, 503, "POST", account, json={"type": "Deposit", "amount": 1.0})
            for method, path in (("GET", account), ("GET", f"{account}/events"), ("GET", "/ready")):
                refused = client.request(method, path)
                assert refused.status_code == 503, refused.text
                assert refused.json()["error"] == "store_unavailable"
                assert refused.headers["retry-after"] == "1"
            assert client.get("/health").status_code == 200  # the process itself is fine

            proxy.restore()
            wait_for(client, 200, "GET", "/ready")
            state = client.get(account).json()
            assert state["version"] in (1, 2)  # a deposit cut mid-flight may have committed
            deposit = client.post(account, json={"type": "Deposit", "amount": 5.0})
            assert deposit.status_code == 200, deposit.text
            assert deposit.json()["version"] == state["version"] + 1
        # The store's own reconnect logging may show tracebacks; the HTTP layer had no 500.
        assert "unhandled error" not in server.output(), server.output()
    finally:
        server.stop()
        drop_schema(direct.geturl())
