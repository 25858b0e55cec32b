"""An import from start to end, on any ``Backend``.

Two phases, so that a malformed file writes nothing: first every file is read and
checked, and its sessions are encoded into a temporary spool file (memory stays flat
however large the export); then the spooled sessions go to the backend in batches.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO

import msgspec

from ..backend import Backend
from ..errors import InvalidRequest
from ..events import Event, decoder, encoder
from ..formats import parse_events
from ..results import ImportOutcome
from .conversation import Tally, session_events
from .errors import ImportFailed
from .reader import read

BATCH = 256  # sessions per backend call: bounds memory, and progress moves
# Batches written at once. One: with two, one batch's decoding and folding (Python,
# holding the GIL) ran beside the other's fsync threads and SQLite steps, which then
# wait up to the 5 ms switch interval for the GIL after each system call (3,500 journal
# writes went 4-7x slower beside a busy Python thread). Measured on the 100 MB bench:
# the same wall time, a little less CPU and ~25 MB less peak RSS than two.
IN_FLIGHT = 1


class ImportReport(msgspec.Struct):
    """What an import did; ``imported`` lists every session it wrote."""

    imported: list[str] = msgspec.field(default_factory=list)
    skipped: list[str] = msgspec.field(default_factory=list)  # already there (no --replace)
    replaced: list[str] = msgspec.field(default_factory=list)
    conversations: int = 0  # conversations found in the input
    empty: int = 0  # ... of which had nothing to keep
    duplicates: int = 0  # ... of which appeared twice
    attachments: int = 0  # files and images noted in metadata (exports lack their bytes)
    unknown_content: dict[str, int] = msgspec.field(default_factory=dict)


# (phase, done, total): "reading" in bytes, "writing" in sessions
Progress = Callable[[str, int, int], None]


@dataclass
class _Spool:
    file: IO[bytes] = field(
        default_factory=lambda: tempfile.TemporaryFile(prefix="sessionlog-import-")  # noqa: SIM115 (closed by import_files)
    )
    index: dict[str, tuple[int, int]] = field(default_factory=dict)  # sid -> (offset, length)
    size: int = 0

    def add(self, sid: str, events: Iterable[Event]) -> None:
        data = encoder.encode_lines(events)  # journal lines, as encode_line writes them
        self.file.write(data)
        self.index[sid] = (self.size, len(data))
        self.size += len(data)

    def load(self, sids: Sequence[str]) -> list[tuple[str, list[Event]]]:
        """Sessions back from the spool (``pread``: safe from several threads at once;
        ``flush`` first)."""
        fd = self.file.fileno()
        out = []
        for sid in sids:
            offset, length = self.index[sid]
            data = os.pread(fd, length, offset)
            out.append((sid, decoder.decode_lines(data)))
        return out


def _read_all(files: Sequence[tuple[str, str]], progress: Progress | None) -> tuple[_Spool, Tally]:
    """Phase one: read and check every file; nothing is written to the store."""
    tally = Tally()
    spool = _Spool()
    total = sum(os.path.getsize(path) for path, _ in files)
    done = 0
    try:
        for path, name in files:
            base = done

            def position(pos: int, base: int = base) -> None:
                if progress is not None:
                    progress("reading", base + pos, total)

            for kind, item in read(path, name, tally, position):
                if kind == "events":
                    try:  # checked now, so that a bad backup stops the import before any write
                        backup = parse_events(item)
                    except InvalidRequest as e:
                        raise ImportFailed(name, "the events export", e.message) from None
                    for sid, events in backup.items():
                        if sid in spool.index:
                            tally.duplicates += 1
                        else:
                            spool.add(sid, events)
                    continue
                sid, events = session_events(item)
                if sid in spool.index:
                    tally.duplicates += 1
                    continue
                spool.add(sid, events)
            done += os.path.getsize(path)
            if progress:
                progress("reading", done, total)
    except BaseException:
        spool.file.close()
        raise
    return spool, tally


async def import_files(
    backend: Backend,
    files: Sequence[tuple[str, str]],
    *,
    replace: bool = False,
    progress: Progress | None = None,
) -> ImportReport:
    """Import ``files`` ((path, name to show) pairs) into ``backend``.

    Sessions that already exist are skipped and reported (``replace`` replaces them),
    whatever the file: a foreign export or an ``events`` backup (SPEC §11)."""
    spool, tally = await asyncio.to_thread(_read_all, files, progress)
    report = ImportReport(
        conversations=tally.conversations,
        empty=tally.empty,
        duplicates=tally.duplicates,
        attachments=tally.attachments,
        unknown_content=dict(tally.unknown),
    )
    try:
        spool.file.flush()
        sids = list(spool.index)
        chunks = [sids[i : i + BATCH] for i in range(0, len(sids), BATCH)]
        outcomes: list[ImportOutcome] = [ImportOutcome() for _ in chunks]
        in_flight = asyncio.Semaphore(IN_FLIGHT)
        written = 0

        async def write(k: int) -> None:
            nonlocal written
            async with in_flight:
                batch = await asyncio.to_thread(spool.load, chunks[k])
                outcomes[k] = await backend.import_sessions(batch, replace=replace)
            written += len(chunks[k])
            if progress:
                progress("writing", written, len(sids))

        async with asyncio.TaskGroup() as tasks:  # a failure cancels the batches not done
            for k in range(len(chunks)):
                tasks.create_task(write(k))
        for outcome in outcomes:
            report.imported += outcome.imported
            report.skipped += outcome.skipped
            report.replaced += outcome.replaced
    finally:
        spool.file.close()
    return report


def summary(report: ImportReport) -> str:
    """One line for a person: what was imported, skipped, left out."""
    parts = [f"imported {len(report.imported)} session(s)"]
    if report.replaced:
        parts.append(f"replaced {len(report.replaced)}")
    if report.skipped:
        parts.append(
            f"skipped {len(report.skipped)} that already exist (use --replace to replace them)"
        )
    if report.empty:
        parts.append(f"left out {report.empty} empty conversation(s)")
    if report.duplicates:
        parts.append(f"{report.duplicates} duplicate(s) in the input")
    if report.unknown_content:
        kinds = ", ".join(f"{k} x{v}" for k, v in sorted(report.unknown_content.items()))
        parts.append(f"content without text left out: {kinds}")
    if report.attachments:
        parts.append(
            f"{report.attachments} attachment(s) noted in metadata (exports hold no file bytes)"
        )
    return "; ".join(parts)
