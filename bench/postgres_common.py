"""What the parts of bench_postgres.py share: the cluster's databases, the servers on
them, and the report table every part adds its rows to."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import Child, serve

DEFAULT_URL = "postgresql://postgres@127.0.0.1:54329/postgres"
CONTENT = "hello " * 20
rows: list[tuple[str, str, str]] = []


def report(name: str, value: str, note: str = "") -> None:
    rows.append((name, value, note))
    print(f"  {name:<56} {value:<30} {note}", flush=True)


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def per_round(xs: list[float], fmt: Callable[[float], str]) -> str:
    return "rounds " + "/".join(fmt(x) for x in xs)


def url_argument(p: argparse.ArgumentParser, creates: str) -> None:
    """``--url``: an admin URL of the cluster the script ``creates`` databases in."""
    p.add_argument(
        "--url",
        default=os.environ.get("SESSIONLOG_TEST_DATABASE_URL") or DEFAULT_URL,
        help=f"an admin URL of the cluster (it creates and drops {creates}); "
        "default $SESSIONLOG_TEST_DATABASE_URL or " + DEFAULT_URL,
    )


def db_url(admin: str, name: str) -> str:
    return urlsplit(admin)._replace(path=f"/{name}").geturl()


async def create_db(admin: str, name: str) -> str:
    c = await asyncpg.connect(admin)
    try:
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.execute(f'CREATE DATABASE "{name}"')
    finally:
        await c.close()
    return db_url(admin, name)


async def drop_db(admin: str, name: str) -> None:
    c = await asyncpg.connect(admin)
    try:
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await c.close()


async def finish_db(args: argparse.Namespace, name: str) -> None:
    if args.keep:
        print(f"  kept {db_url(args.url, name)}", flush=True)
    else:
        await drop_db(args.url, name)


def serve_db(url: str) -> Child:
    """``sessionlog serve`` on the database at ``url``."""
    return serve("--compact-interval", "5", "--database", url)


def ratios(xs: list[float], ys: list[float], fmt: str) -> str:
    """Each round's figure over its own anchor."""
    return "/".join(format(x / y, fmt) for x, y in zip(xs, ys, strict=True))
