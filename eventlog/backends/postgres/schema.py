"""Versioned migrations: ``migrations/NNNN_name.sql``, applied in order, each in its
own transaction, under an advisory lock so that instances starting together take turns.
A database whose schema is newer than this program is refused, never downgraded."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from ...errors import EventLogError

_LOCK = 0x5E55_1010_6  # pg_advisory_lock key: "sessionlog migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class SchemaTooNew(EventLogError):
    """The database was migrated by a newer sessionlog than this one."""

    code = "schema_too_new"

    def __init__(self, found: int, known: int) -> None:
        super().__init__(
            f"the database's sessionlog schema is version {found}, but this program knows "
            f"only up to version {known}: upgrade sessionlog (a newer version wrote this "
            "database; an older one must not change it)"
        )


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration shipped, in order."""
    out = []
    for f in resources.files(__package__).joinpath("migrations").iterdir():
        m = _NAME.match(f.name)
        if m:
            out.append((int(m.group(1)), f.name, f.read_text(encoding="utf-8")))
    out.sort()
    versions = [v for v, _, _ in out]
    if versions != list(range(1, len(out) + 1)):
        raise RuntimeError(f"migrations must be numbered 1..N without gaps, found {versions}")
    return out


LATEST = len(migrations())


async def current_version(conn: Any) -> int:
    """The schema version recorded in the database (0: none yet)."""
    exists = await conn.fetchval("SELECT to_regclass('sessionlog_schema') IS NOT NULL")
    if not exists:
        return 0
    return int(await conn.fetchval("SELECT coalesce(max(version), 0) FROM sessionlog_schema"))


async def migrate(conn: Any) -> list[int]:
    """Bring the schema up to ``LATEST``; returns the versions applied (maybe none).

    Raises ``SchemaTooNew`` if the database is ahead of this program."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK)
    try:
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS sessionlog_schema ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        found = await current_version(conn)
        if found > LATEST:
            raise SchemaTooNew(found, LATEST)
        applied = []
        for version, name, sql in migrations():
            if version <= found:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO sessionlog_schema (version, name) VALUES ($1, $2)", version, name
                )
            applied.append(version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK)
