"""A real PostgreSQL for the tests: a fresh database per test on the cluster named by
``SESSIONLOG_TEST_DATABASE_URL`` (``.ci/start-postgres`` starts one and prints its URL).

Without that variable the postgres tests skip, saying how to get one; in CI
(``CI=true``) they fail instead, so a missing database never passes silently.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import pytest

ENV = "SESSIONLOG_TEST_DATABASE_URL"
HOW = (
    f"set {ENV} to a PostgreSQL server URL to run the postgres tests, e.g. "
    f"`export {ENV}=$(.ci/start-postgres)` (Debian's postgresql; started as the "
    "postgres user)"
)


def admin_url() -> str:
    url = os.environ.get(ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI: {HOW}")
        pytest.skip(f"no PostgreSQL: {HOW}")
    return url


def available() -> bool:
    """Is a test cluster configured? (In CI its absence is a failure, not a False.)"""
    if os.environ.get(ENV):
        return True
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is required in CI: {HOW}")
    return False


def _with_db(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    base = base.rsplit("/", 1)[0] if base.count("/") > 2 else base
    return f"{base}/{name}" + (f"?{query}" if query else "")


async def create_database() -> str:
    """A new, empty database on the test cluster; returns its URL."""
    url = admin_url()
    name = "sessionlog_test_" + secrets.token_hex(5)
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_db(url, name)


async def drop_database(url: str) -> None:
    name = url.partition("?")[0].rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin_url())
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextmanager
def database_sync() -> Iterator[str]:
    """``create_database`` for synchronous tests (its own event loop)."""
    import asyncio

    url = asyncio.run(create_database())
    try:
        yield url
    finally:
        asyncio.run(drop_database(url))
