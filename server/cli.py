"""Command line: ``sessionlog serve|compact|verify|export|import|reindex|tail|demo``.

Everything but ``serve`` (and ``demo``, which talks to a running server) needs only the
engine, so those commands work on a data directory whether or not a server runs on it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Sequence

from eventlog.errors import EventLogError

from .demo import add_demo_arguments, demo_command

DEFAULT_DATA = os.environ.get("SESSIONLOG_DATA", "memory")


def _progress(label: str, total: int | None) -> Callable[[int], None]:
    """A one-line progress display on stderr (only when it is a terminal)."""
    start = time.monotonic()
    live = sys.stderr.isatty()

    def show(n: int) -> None:
        if not live:
            return
        rate = n / max(time.monotonic() - start, 1e-9)
        of = f"/{total}" if total else ""
        sys.stderr.write(f"\r{label} {n}{of} sessions ({rate:,.0f}/s)   ")
        sys.stderr.flush()

    return show


def _count_journals(data: str) -> int:
    from eventlog.backends.file.layout import Layout

    return sum(1 for _ in Layout(data).journals())


def cmd_compact(args: argparse.Namespace) -> int:
    from eventlog.backends.file.store import Store

    t = time.monotonic()
    with Store(args.data, background=False, reconcile=False) as store:
        n = store.compact_all(_progress("compacting", _count_journals(args.data)))
    print(f"\ncompacted {n} session(s) in {time.monotonic() - t:.2f} s", file=sys.stderr)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from eventlog.backends.file.maintenance import verify

    n, problems = verify(args.data, _progress("verified", None))
    for p in problems:
        print(f"{p.path}: {p.what}")
    print(f"\nchecked {n} journal(s): {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def cmd_reindex(args: argparse.Namespace) -> int:
    import resource

    from eventlog.backends.file.store import Store

    t = time.monotonic()
    total = _count_journals(args.data)
    with Store(args.data, background=False, reconcile=False) as store:
        from eventlog.backends.file.maintenance import reindex

        n = reindex(store, _progress("indexed", total))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nindexed {n} session(s) in {time.monotonic() - t:.2f} s, peak RSS {rss:.0f} MB",
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
    with contextlib.ExitStack() as stack:
        to_file = args.output not in (None, "-")
        out = stack.enter_context(open(args.output, "wb")) if to_file else sys.stdout.buffer
        store = stack.enter_context(Store(args.data, background=False, reconcile=False))
        for chunk in store.export(req):
            out.write(chunk)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from eventlog.backends.file.store import Store

    if args.file == "-":
        data = sys.stdin.buffer.read()
    else:
        with open(args.file, "rb") as f:
            data = f.read()
    with Store(args.data, background=False) as store:
        ids = store.import_events(data)
    for sid in ids:
        print(sid)
    print(f"imported {len(ids)} session(s)", file=sys.stderr)
    return 0


def _describe(ev: object) -> str:
    from eventlog.events import Event, event_type

    assert isinstance(ev, Event)  # type: ignore[arg-type]
    d = ev.data
    kind = event_type(ev)
    text = getattr(d, "content", None) or getattr(d, "message", None) or getattr(d, "title", "")
    role = getattr(d, "role", "")
    who = f" {role}" if role else ""
    return f"{ev.ts} #{ev.seq} {kind}{who}: {text}"


def cmd_tail(args: argparse.Namespace) -> int:
    """Print a session's events, then follow new ones (from any process) until ^C."""
    import queue

    import watchfiles

    from eventlog.backends.file.store import Store
    from eventlog.events import encoder
    from eventlog.notify import Published

    q: queue.Queue[object] = queue.Queue()
    store = Store(args.data, background=False, reconcile=False)
    try:
        path = store.path_of(args.session_id)
        store.subscribe(lambda n: q.put(n) if isinstance(n, Published) else None)
        store.watch(args.session_id)
        last = 0
        for ev in store.events(args.session_id, 0)[-args.lines :] if args.lines else []:
            print(encoder.encode(ev).decode() if args.json else _describe(ev), flush=True)
            last = ev.seq
        last = max(last, store.head(args.session_id))
        for _ in watchfiles.watch(path, debounce=50, step=20, raise_interrupt=False):
            store.refresh(args.session_id)
            while not q.empty():
                n = q.get()
                assert isinstance(n, Published)
                for ev in n.events:
                    if ev.seq > last:
                        print(
                            encoder.encode(ev).decode() if args.json else _describe(ev), flush=True
                        )
                        last = ev.seq
            if not os.path.exists(path):
                print("session deleted", file=sys.stderr)
                return 0
    except KeyboardInterrupt:
        return 0
    finally:
        store.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sessionlog",
        description="A crash-safe, event-sourced store for chat and voice conversations.",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def data_arg(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--data", default=DEFAULT_DATA, help="data directory (default: memory)")

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
    sp = sub.add_parser("import", help="import an events export (a full backup)")
    data_arg(sp)
    sp.add_argument("file", help="the export file, or - for standard input")
    sp.set_defaults(func=cmd_import)
    sp = sub.add_parser("tail", help="follow a session live in the terminal")
    data_arg(sp)
    sp.add_argument("session_id", metavar="SESSION")
    sp.add_argument("-n", "--lines", type=int, default=20, help="earlier events to show first")
    sp.add_argument("--json", action="store_true", help="print raw event JSON lines")
    sp.set_defaults(func=cmd_tail)
    sp = sub.add_parser("demo", help="stream a voice transcript into a running server")
    add_demo_arguments(sp)
    sp.set_defaults(func=demo_command)
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
