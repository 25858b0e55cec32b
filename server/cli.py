"""Command line: ``sessionlog serve|compact|verify|export|import|reindex|tail|migrate|demo``.

Everything but ``serve`` (and ``demo``, which talks to a running server) needs only the
engine, so those commands work on a data directory whether or not a server runs on it,
or, with ``--database URL``, on a PostgreSQL database (``cli_db.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Sequence

from eventlog.errors import EventLogError

from .config import DATA_ENV, DATA_HELP, DATABASE_ENV
from .demo import add_demo_arguments
from .progress import Phases, counter, progress
from .tail import cmd_tail

READ_CHUNK = 1 << 20  # import reads its file in 1 MiB steps (a bar for big backups)


def _count_journals(data: str) -> int:
    from eventlog.backends.file.layout import Layout

    return sum(1 for _ in Layout(data).journals())


def cmd_migrate(args: argparse.Namespace) -> int:
    if not args.database:
        print(
            f"sessionlog migrate: give --database URL (or ${DATABASE_ENV}); "
            "a data directory needs no migration",
            file=sys.stderr,
        )
        return 2
    from . import cli_db  # asyncpg only when a database is used

    return cli_db.migrate(args)


def cmd_compact(args: argparse.Namespace) -> int:
    if args.database:
        from . import cli_db  # asyncpg only when a database is used

        return cli_db.compact(args)
    from eventlog.backends.file.store import Store

    t = time.monotonic()
    total = _count_journals(args.data)
    with (
        progress("compacting", total) as bar,
        Store(args.data, background=False, reconcile=False) as store,
    ):
        n = store.compact_all(counter(bar))  # n: those that needed it; every one was checked
        counter(bar)(total)
    print(f"compacted {n} session(s) in {time.monotonic() - t:.2f} s", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    if args.database:
        from . import cli_db  # asyncpg only when a database is used

        return cli_db.verify(args)
    from eventlog.backends.file.maintenance import verify

    with progress("verifying", _count_journals(args.data)) as bar:
        n, problems = verify(args.data, counter(bar))
        counter(bar)(n)
    for p in problems:
        print(f"{p.path}: {p.what}")
    print(f"checked {n} journal(s): {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def cmd_reindex(args: argparse.Namespace) -> int:
    import resource

    from eventlog.backends.file.store import Store

    if args.database:
        from . import cli_db  # asyncpg only when a database is used

        return cli_db.reindex(args)
    t = time.monotonic()
    total = _count_journals(args.data)
    with (
        progress("indexing", total) as bar,
        Store(args.data, background=False, reconcile=False) as store,
    ):
        from eventlog.backends.file.maintenance import reindex

        n = reindex(store, counter(bar))
        counter(bar)(n)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"indexed {n} session(s) in {time.monotonic() - t:.2f} s, peak RSS {rss:.0f} MB",
        file=sys.stderr,
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from eventlog.backends.file.store import Store
    from eventlog.requests import ExportRequest

    if not args.all and not args.session_ids:
        print("export: name sessions or pass --all", file=sys.stderr)
        return 2
    req = ExportRequest(session_ids=args.session_ids or None, all=args.all, format=args.format)
    total = _count_journals(args.data) if args.all else len(args.session_ids)
    with contextlib.ExitStack() as stack:
        to_file = args.output not in (None, "-")
        out = stack.enter_context(open(args.output, "wb")) if to_file else sys.stdout.buffer
        if args.database:
            from . import cli_db  # asyncpg only when a database is used

            return cli_db.export(args, req, out)
        store = stack.enter_context(Store(args.data, background=False, reconcile=False))
        bar = stack.enter_context(progress("exporting", total))
        for chunk in store.export(req):  # a chunk per session
            out.write(chunk)
            bar.update(1)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Import exports (ours, ChatGPT, Claude.ai, Open WebUI), recognised by content."""
    import asyncio
    import shutil
    import tempfile

    from eventlog import connect
    from eventlog.imports import import_files, summary

    with contextlib.ExitStack() as stack:
        files = []
        for name in args.files:
            if name == "-":  # a pipe cannot be read twice: keep it in a temp file
                tmp = stack.enter_context(tempfile.NamedTemporaryFile(prefix="sessionlog-stdin-"))
                shutil.copyfileobj(sys.stdin.buffer, tmp)
                tmp.flush()
                files.append((tmp.name, "standard input"))
            else:
                if not os.path.isfile(name):
                    print(f"sessionlog import: {name}: no such file", file=sys.stderr)
                    return 2
                files.append((name, name))
        bars = Phases()

        async def run() -> object:
            backend = connect(args.database or args.data)
            try:
                return await import_files(backend, files, replace=args.replace, progress=bars)
            finally:
                await backend.close()

        try:
            report = asyncio.run(run())
        finally:
            bars.close()
    from eventlog.imports import ImportReport

    assert isinstance(report, ImportReport)
    for sid in report.imported:
        print(sid)
    if report.skipped:
        print("already there, skipped: " + " ".join(report.skipped), file=sys.stderr)
    print(summary(report), file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sessionlog",
        description="A crash-safe, event-sourced store for chat and voice conversations.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def data_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", default=os.environ.get(DATA_ENV, "memory"), help=DATA_HELP)
        database_arg(sp)

    def database_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--database",
            default=os.environ.get(DATABASE_ENV) or None,
            metavar="URL",
            help="a PostgreSQL database (postgresql://…) instead of --data "
            f"(default: ${DATABASE_ENV})",
        )

    from .serve import add_serve_arguments, serve_command

    sp = sub.add_parser("serve", help="run the HTTP + WebSocket server and web page")
    add_serve_arguments(sp)
    sp.set_defaults(func=serve_command)

    sp = sub.add_parser("compact", help="write snapshots for every journal that is ahead")
    data_arg(sp)
    sp.set_defaults(func=cmd_compact)
    sp = sub.add_parser("verify", help="check every journal and snapshot; exit 1 on problems")
    data_arg(sp)
    sp.set_defaults(func=cmd_verify)
    sp = sub.add_parser("reindex", help="rebuild the list/search index from the journals")
    data_arg(sp)
    sp.set_defaults(func=cmd_reindex)
    sp = sub.add_parser("export", help="export sessions (openai, sharegpt, events, markdown)")
    data_arg(sp)
    sp.add_argument("session_ids", nargs="*", metavar="SESSION")
    sp.add_argument("--all", action="store_true", help="every session")
    sp.add_argument(
        "--format", default="events", choices=["openai", "sharegpt", "events", "markdown"]
    )
    sp.add_argument("-o", "--output", help="file to write (default: standard output)")
    sp.set_defaults(func=cmd_export)
    sp = sub.add_parser(
        "import",
        help="import exports: an events backup, ChatGPT/Claude.ai (.json or .zip), Open WebUI",
    )
    data_arg(sp)
    sp.add_argument(
        "files", nargs="+", metavar="FILE", help="export files, or - for standard input"
    )
    sp.add_argument(
        "--replace", action="store_true", help="replace sessions that exist (default: skip them)"
    )
    sp.set_defaults(func=cmd_import)
    sp = sub.add_parser(
        "tail",
        help="follow a session live in the terminal",
        description="Print a session as a transcript, then follow it live (also what other "
        "processes write) until Ctrl+C; streaming messages are updated in place on a terminal.",
    )
    data_arg(sp)
    sp.add_argument("session_id", metavar="SESSION")
    sp.add_argument(
        "-n", "--lines", type=int, default=20, help="earlier messages (or events) to show first"
    )
    sp.add_argument(
        "--events",
        "--json",
        dest="events",
        action="store_true",
        help="print the raw events as JSON lines instead of a transcript",
    )
    sp.set_defaults(func=cmd_tail)
    sp = sub.add_parser("migrate", help="create or upgrade a PostgreSQL database's schema")
    database_arg(sp)
    sp.set_defaults(func=cmd_migrate)
    sp = sub.add_parser(
        "demo", help="stream a demo into a running server (sessionlog demo voice --help)"
    )
    add_demo_arguments(sp)
    return p


def _quiet_stdout() -> None:
    """Point stdout at /dev/null: the reader went away (``| head``), so the flush at
    exit must not fail a second time and print a traceback after all."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except BrokenPipeError:
        # What `cat` does when `head` has read enough: stop quietly. 141 = 128 + SIGPIPE,
        # the status a shell reports for a tool killed by it.
        _quiet_stdout()
        return 141
    except EventLogError as e:
        print(f"sessionlog {args.command}: {e.message}", file=sys.stderr)
        return 2
    except FileNotFoundError as e:
        print(f"sessionlog {args.command}: {e}", file=sys.stderr)
        return 2
