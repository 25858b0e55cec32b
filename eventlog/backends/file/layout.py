"""Where things live under the data directory (SPEC §2), and finding them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from ...requests import check_session_id
from .files import fsync_dir

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# temp files of snapshot writes (snapshot.py), imports (export.py) and new journals
# (journal.create): {name}-{pid}-{hex}
_TEMP_RE = re.compile(
    r"^[A-Za-z0-9_-]{1,64}\.(?:json\.tmp|jsonl\.import|jsonl\.new)-(\d+)-[0-9a-f]{8}$"
)


class Layout:
    """``root/sessions/{YYYY-MM-DD}/{id}.jsonl`` (+ ``.json``); internals beside them."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = os.path.abspath(os.fspath(root))
        self.sessions = os.path.join(self.root, "sessions")
        self.trash = os.path.join(self.root, "trash")
        self.index = os.path.join(self.root, "index.sqlite3")
        self.ids = os.path.join(self.root, "ids.sqlite3")  # see idstore.py
        for d in (self.root, self.sessions, self.trash):
            os.makedirs(d, exist_ok=True)

    def journal_path(self, date: str, session_id: str) -> str:
        """The journal of a session started on ``date`` (the id is validated first)."""
        check_session_id(session_id)
        if not _DATE_RE.match(date):
            raise ValueError(f"bad date folder {date!r}")
        return os.path.join(self.sessions, date, session_id + ".jsonl")

    def ensure_date_dir(self, date: str) -> str:
        d = os.path.join(self.sessions, date)
        if not os.path.isdir(d):
            os.makedirs(d, exist_ok=True)
            fsync_dir(self.sessions)
        return d

    def date_dirs(self) -> list[str]:
        try:
            names = os.listdir(self.sessions)
        except FileNotFoundError:
            return []
        return sorted((n for n in names if _DATE_RE.match(n)), reverse=True)

    def find(self, session_id: str) -> str | None:
        """Search the date folders for a session's journal (newest first)."""
        check_session_id(session_id)
        name = session_id + ".jsonl"
        for date in self.date_dirs():
            p = os.path.join(self.sessions, date, name)
            if os.path.exists(p):
                return p
        return None

    def journals(self) -> Iterator[tuple[str, str, int]]:
        """Every journal as (session_id, path, size in bytes)."""
        for date in self.date_dirs():
            try:
                it = os.scandir(os.path.join(self.sessions, date))
            except FileNotFoundError:
                continue
            with it:
                for entry in it:
                    name = entry.name
                    if not name.endswith(".jsonl"):
                        continue
                    sid = name[:-6]
                    try:
                        check_session_id(sid)
                        size = entry.stat().st_size
                    except Exception:
                        continue
                    yield sid, entry.path, size

    def journal_names(self) -> Iterator[tuple[str, str, bool]]:
        """Every journal as (session_id, path, has a snapshot), from the folder listings
        alone (no stat per file: a cold start of a store without an index)."""
        for date in self.date_dirs():
            folder = os.path.join(self.sessions, date)
            try:
                names = set(os.listdir(folder))
            except FileNotFoundError:
                continue
            for name in names:
                if not name.endswith(".jsonl"):
                    continue
                sid = name[:-6]
                try:
                    check_session_id(sid)
                except Exception:
                    continue
                yield sid, os.path.join(folder, name), name[:-1] in names

    def relative(self, path: str) -> str:
        return os.path.relpath(path, self.root)

    def absolute(self, rel: str) -> str:
        p = os.path.abspath(os.path.join(self.root, rel))
        if not p.startswith(self.sessions + os.sep):
            raise ValueError(f"{rel!r} is outside the sessions folder")
        return p

    def sweep_temp(self) -> int:
        """Remove temp files left by a snapshot write or an import whose process died
        (killed mid-write); they are never read, only take space. A live process's
        temp files (its pid still runs) are left alone."""
        n = 0
        for date in self.date_dirs():
            d = os.path.join(self.sessions, date)
            try:
                names = os.listdir(d)
            except FileNotFoundError:
                continue
            for name in names:
                m = _TEMP_RE.match(name)
                if m is None or _alive(int(m.group(1))):
                    continue
                try:
                    os.unlink(os.path.join(d, name))
                    n += 1
                except FileNotFoundError:
                    pass
        return n

    def empty_trash(self) -> int:
        """Remove leftovers of deletes that crashed after their commit point."""
        n = 0
        for name in os.listdir(self.trash):
            try:
                os.unlink(os.path.join(self.trash, name))
                n += 1
            except FileNotFoundError:
                pass
        return n


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
