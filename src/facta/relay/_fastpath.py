"""Whether a publisher may take its fast path through a broker client's internals. Internal.

Two publishers reach past their client library's public API for throughput: the RabbitMQ
one writes whole batches of ``basic.publish`` frames on aiormq's channel and settles
publisher confirms and returns per batch (:mod:`facta.relay._aiormq`); the NATS one writes a
batch's ``HPUB`` commands into nats-py's outgoing buffer. Each was read and tested against
one version of its library, named in :data:`CHECKED_VERSIONS`, the one place they are
pinned. With any other version installed, with an attribute it uses missing, or with
``FACTA_RELAY_PUBLIC_API`` set (the tests and the benchmark set it to run the other path),
the publisher takes the library's public API instead: the same messages and guarantees, at a
lower rate. Moving a pin means reading what changed in the library where the fast path
touches it, then running the relay tests on both paths.
"""

from __future__ import annotations

import logging
import os
from importlib import metadata

log = logging.getLogger("facta.relay")

CHECKED_VERSIONS = {"aiormq": "7.2.4", "nats-py": "2.16.0"}
"""The versions of the client libraries whose internals the fast paths were checked against."""

PUBLIC_API = "FACTA_RELAY_PUBLIC_API"
"""Set this environment variable (to anything but ``""`` or ``0``) to keep every publisher on
its client library's public API."""

_told: set[tuple[str, str]] = set()


def refusal(package: str, client: object, needs: tuple[str, ...]) -> str | None:
    """Why the fast path through ``package``'s ``client`` may not run (None: it may).

    ``needs`` names the attributes of ``client`` the fast path uses. The first time a reason
    comes up for a package, it is logged (INFO) with what runs instead.
    """
    reason = _reason(package, client, needs)
    if reason is not None and (package, reason) not in _told:
        _told.add((package, reason))
        log.info("relay: publishing through %s's public API: %s", package, reason)
    return reason


def _reason(package: str, client: object, needs: tuple[str, ...]) -> str | None:
    if os.environ.get(PUBLIC_API, "") not in ("", "0"):
        return f"{PUBLIC_API} is set"
    try:
        installed = metadata.version(package)
    except metadata.PackageNotFoundError:
        return f"{package} is not installed as a distribution"
    checked = CHECKED_VERSIONS[package]
    if installed != checked:
        return f"{package} {installed} is installed; the fast path was checked against {checked}"
    missing = [name for name in needs if not hasattr(client, name)]
    if missing:
        return f"{package} {installed} lacks {', '.join(missing)}"
    return None
