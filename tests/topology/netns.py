"""Network namespaces of the tests' own: an app node in a namespace of its own, joined to the
machine by two veth pairs on private /24s, one for its clients (``front``) and one for its
database (``back``), so that the database can be cut off (``ip link set ... down``: packets
to it go nowhere, with no reset or refusal) while clients still reach the node and see what
it answers. Removed afterwards (the namespace takes its ends of the pairs with it).

This kernel has no netem or prio queueing disciplines ("Specified qdisc kind is unknown"),
so a link is cut by taking it down rather than by losing its packets."""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from tests.conftest import service_missing

_numbers = itertools.count(1)


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, capture_output=True, timeout=30)


@dataclass
class Link:
    """A veth pair: ``outside`` on the machine at ``gateway``, ``inside`` at ``address``."""

    outside: str
    inside: str
    gateway: str
    address: str


class Namespace:
    """A namespace with a :attr:`front` link (its clients) and a :attr:`back` one (its
    database)."""

    def __init__(self) -> None:
        if os.geteuid() != 0:
            service_missing("network namespaces are made as root")
        # Names and subnets apart from every other namespace this process makes (a random
        # pick collided once: `ip netns add` refused the name, and the test was skipped),
        # and, by the process id, from another test run's.
        number = next(_numbers)
        tag = f"{os.getpid() % 10000}x{number}"
        self.name = f"facta-{tag}"
        subnet = (os.getpid() * 7 + number) % 250 + 1
        # Interface names: at most 15 characters.
        self.front = Link(f"fa{tag}f", f"fa{tag}F", f"10.231.{subnet}.1", f"10.231.{subnet}.2")
        self.back = Link(f"fa{tag}b", f"fa{tag}B", f"10.232.{subnet}.1", f"10.232.{subnet}.2")
        self._made = False

    def create(self) -> None:
        try:
            _ip("netns", "add", self.name)
        except (OSError, subprocess.CalledProcessError) as exc:
            service_missing(f"cannot make a network namespace here: {exc}")
        self._made = True
        for link in (self.front, self.back):
            _ip("link", "add", link.outside, "type", "veth", "peer", "name", link.inside)
            _ip("link", "set", link.inside, "netns", self.name)
            _ip("addr", "add", f"{link.gateway}/24", "dev", link.outside)
            _ip("link", "set", link.outside, "up")
            self.run_checked("ip", "addr", "add", f"{link.address}/24", "dev", link.inside)
            self.run_checked("ip", "link", "set", link.inside, "up")
        self.run_checked("ip", "link", "set", "lo", "up")

    def command(self, arguments: Sequence[str]) -> list[str]:
        """``arguments`` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *arguments]

    def run_checked(self, *arguments: str) -> None:
        subprocess.run(self.command(arguments), check=True, capture_output=True, timeout=30)

    def cut(self) -> None:
        """Cut the node off from its database."""
        self.run_checked("ip", "link", "set", self.back.inside, "down")

    def heal(self) -> None:
        self.run_checked("ip", "link", "set", self.back.inside, "up")

    def remove(self) -> None:
        if self._made:
            subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
            for link in (self.front, self.back):
                subprocess.run(["ip", "link", "del", link.outside], capture_output=True, timeout=30)
