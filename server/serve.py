"""``sessionlog serve``: run the server until SIGINT/SIGTERM, then shut down gracefully
(WebSockets get 1001, in-flight requests finish, the backend compacts one last time)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from eventlog.errors import EventLogError

from .app import make_app
from .config import DATA_ENV, DATA_HELP, DATABASE_ENV, Config

log = logging.getLogger("sessionlog.server")


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)"
    )
    parser.add_argument("--port", type=int, default=5174, help="port (default 5174; 0 = any)")
    parser.add_argument(
        "--data",
        default=os.environ.get(DATA_ENV, "memory"),
        help=DATA_HELP,
    )
    parser.add_argument(
        "--database",
        default=os.environ.get(DATABASE_ENV) or None,
        metavar="URL",
        help="serve a PostgreSQL database (postgresql://…) shared with other instances, "
        f"instead of --data (default: ${DATABASE_ENV})",
    )
    parser.add_argument(
        "--read-database",
        default=os.environ.get("SESSIONLOG_READ_DATABASE_URL") or None,
        metavar="URL",
        help="a read replica of --database for the list and search "
        "(default: $SESSIONLOG_READ_DATABASE_URL)",
    )
    parser.add_argument(
        "--fsync",
        choices=("always", "interval", "never"),
        default="always",
        help="when appends reach the disk (default always: before the ack)",
    )
    parser.add_argument(
        "--compact-interval",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="seconds between compactions into session JSON (default 5)",
    )
    parser.add_argument(
        "--cache-mb",
        type=_positive_int,
        default=64,
        metavar="MB",
        help="session JSON that open sessions may hold in memory, in MiB, beyond which "
        "the least recently used are closed (default 64; memory is about 1.5-2x that)",
    )
    parser.add_argument(
        "--loop",
        choices=("auto", "uvloop", "asyncio"),
        default="auto",
        help="event loop: uvloop where installed (auto, the default), or asyncio's own",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="require this bearer token on every API call (default: $SESSIONLOG_TOKEN, else none)",
    )
    parser.add_argument(
        "--allow-origin",
        action="extend",
        nargs="+",
        default=[],
        metavar="ORIGIN",
        help="extra browser origins allowed to use the API, e.g. "
        "http://localhost:3000 (repeatable)",
    )


def config_from(args: argparse.Namespace) -> Config:
    token = args.token if args.token is not None else os.environ.get("SESSIONLOG_TOKEN")
    return Config(
        host=args.host,
        port=args.port,
        data=args.data,
        database=args.database,
        read_database=args.read_database,
        fsync=args.fsync,
        compact_interval=args.compact_interval,
        token=token or None,
        allow_origins=tuple(args.allow_origin),
        cache_mb=args.cache_mb,
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of MiB >= 1, got {text!r}")
    return value


def serve_command(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("watchfiles").setLevel(logging.WARNING)  # one line per change is noise
    config = config_from(args)
    if _use_uvloop(args.loop):
        import uvloop

        return uvloop.run(serve(config))
    return asyncio.run(serve(config))


def _use_uvloop(choice: str) -> bool:
    """uvloop (a pinned dependency on Linux and macOS) unless asyncio's loop is asked for
    or uvloop is not installed (Windows)."""
    if choice == "asyncio":
        return False
    try:
        import uvloop  # noqa: F401
    except ImportError:
        if choice == "uvloop":
            raise SystemExit(
                "sessionlog serve: --loop uvloop, but uvloop is not installed"
            ) from None
        return False
    return True


def _url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


async def serve(config: Config) -> int:
    runner = web.AppRunner(make_app(config), access_log=None, shutdown_timeout=10)
    try:
        await runner.setup()  # opens the backend
    except EventLogError as e:
        print(f"sessionlog serve: {e.message}", file=sys.stderr)
        return 1
    site = web.TCPSite(runner, config.host, config.port)
    try:
        await site.start()
    except OSError as e:
        print(
            f"sessionlog: cannot listen on {config.host}:{config.port}: {e.strerror}",
            file=sys.stderr,
        )
        await runner.cleanup()
        return 1
    port = runner.addresses[0][1]
    token_note = " (token required)" if config.token else ""
    if config.database:
        from eventlog.backends.postgres.db import redact

        where = f"database {redact(config.database)}"
    else:
        where = f"data in {os.path.abspath(config.data)}"
    print(f"sessionlog serving {_url(config.host, port)} with {where}{token_note}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down")
    await runner.cleanup()  # stop accepting, 1001 to sockets, finish requests, compact
    return 0
