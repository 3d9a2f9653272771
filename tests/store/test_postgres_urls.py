"""The servers a PostgreSQL URL names, as messages show them: one, several (a primary and its
standbys, for ``target_session_attrs``), IPv6, default ports, credentials left out."""

from __future__ import annotations

from facta.store.postgres.common import describe, servers, where


def test_one_server_with_and_without_a_port() -> None:
    assert servers("postgresql://app:secret@db.example:6432/bank") == [("db.example", 6432)]
    assert servers("postgresql://db/bank") == [("db", 5432)]
    assert servers("postgresql:///bank") == [("localhost", 5432)]


def test_several_servers_and_ipv6() -> None:
    url = "postgresql://app:pw@h1:5433,[::1]:5434,h3/bank?target_session_attrs=read-write"
    assert servers(url) == [("h1", 5433), ("::1", 5434), ("h3", 5432)]
    assert where(url) == "h1:5433,::1:5434,h3:5432"
    assert describe(url) == "database 'bank' at h1:5433,::1:5434,h3:5432"
    assert "pw" not in describe(url)
