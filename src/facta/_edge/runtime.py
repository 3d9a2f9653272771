"""The live parts of a running service, filled in at startup and read by every handler."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

from facta.application import Application
from facta.errors import StoreUnavailable


class Runtime:
    """Holds the service's Application once startup has opened it.

    ``open_application`` is awaited at startup, inside the server's event loop (drivers bind
    their connections to the loop that opened them). Whatever else it opens (a read store, a
    projection runner) it registers on :attr:`cleanup`, which is closed at shutdown, last in
    first out, before the Application's store.
    """

    def __init__(self, open_application: Callable[[], Awaitable[Application]]) -> None:
        self.open_application = open_application
        self.cleanup = contextlib.AsyncExitStack()
        self._application: Application | None = None

    @property
    def application(self) -> Application:
        """The open Application; raises StoreUnavailable before startup or after shutdown."""
        if self._application is None:
            raise StoreUnavailable("the service has not opened its event store")
        return self._application

    async def start(self) -> Application:
        """Open the Application (called by the app's lifespan)."""
        self.cleanup = contextlib.AsyncExitStack()
        self._application = await self.open_application()
        return self._application

    async def stop(self) -> None:
        """Close what startup opened, wait for background work, close the store."""
        application, self._application = self._application, None
        try:
            await self.cleanup.aclose()
        finally:
            if application is not None:
                await application.drain()
                await application.store.close()
