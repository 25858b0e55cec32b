"""Crash points: SIGKILL at every named step of the write paths, then prove recovery.

For each point of ``eventlog.backends.file.faults`` (journal.after_write, journal.after_fsync,
snapshot.after_temp, snapshot.after_rename, delete.after_rename, import.after_first) a
child process does real work (appends from several threads, compaction, deletes, an
import) with ``SESSIONLOG_CRASH_AT=<point>:<n>`` armed, n varied so the kill lands at
different moments, and is killed there. After every single crash the data directory is
checked as a user would see it:

- every append the child acknowledged (it wrote ``ack`` only after the call returned)
  is in the journal exactly once, at the seq it was acknowledged with; seq is 1..N;
- ``verify`` finds nothing except, at most, a torn tail;
- every snapshot parses and is the old one or a correct new one;
- a deleted session is fully gone or fully there (loads, equal to before);
- an imported session is fully imported or absent.

Children are forked from a pre-imported "zygote" process (so a crash costs a fork, not
an interpreter start-up); the fork re-reads the fault environment with
``importlib.reload(eventlog.backends.file.faults)``.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from eventlog.backends.file.layout import Layout
from eventlog.backends.file.maintenance import verify
from eventlog.backends.file.scan import read_tail
from eventlog.backends.file.snapshot import read_snapshot, snapshot_path
from eventlog.backends.file.store import Store
from eventlog.errors import SessionNotFound
from eventlog.events import MessageAppended
from eventlog.requests import AppendRequest, ExportRequest, StartRequest, UpdateRequest

from .conftest import PYTHON, ROOT

CRASHES_PER_POINT = int(os.environ.get("SESSIONLOG_CRASHES_PER_POINT", "22"))


# -- the child side (runs in a process forked from the zygote) -----------------------------


def _emit(fd: int, *parts: object) -> None:
    # one write(2) of a short line: complete or absent, never half a line
    os.write(fd, (" ".join(str(p) for p in parts) + "\n").encode())


def child_main(mode: str, root: str, args: dict[str, Any], out_fd: int) -> None:
    """The work a crashing child does; every completed call is reported on ``out_fd``."""
    store = Store(root, fsync="always", background=False, reconcile=False)
    rng = random.Random(args["seed"])
    if mode == "append":
        for sid, mid in args["retry"]:  # a client retrying what was never acknowledged
            _emit(out_fd, "try", sid, mid)
            r = store.append(
                AppendRequest(session_id=sid, role="user", content=mid, message_id=mid)
            )
            _emit(out_fd, "ack", sid, mid, r.seq, int(r.duplicate))
        lock = threading.Lock()

        def worker(t: int) -> None:
            wrng = random.Random(args["seed"] * 31 + t)
            for i in range(args["limit"]):
                sid = wrng.choice(args["sessions"])
                mid = f"{args['tag']}-{t}-{i}"
                _emit(out_fd, "try", sid, mid)
                r = store.append(
                    AppendRequest(
                        session_id=sid, role="user", content=f"{mid} ünï ✓", message_id=mid
                    )
                )
                _emit(out_fd, "ack", sid, mid, r.seq, int(r.duplicate))
                if args["compact_every"] and i % args["compact_every"] == 0:
                    with lock:
                        store.compact()

        ts = [threading.Thread(target=worker, args=(t,)) for t in range(args["threads"])]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    elif mode == "compact":
        for rnd in range(args["rounds"]):
            for sid in rng.sample(args["sessions"], rng.randint(1, len(args["sessions"]))):
                mid = f"{args['tag']}-{rnd}-{sid}"
                _emit(out_fd, "try", sid, mid)
                r = store.append(
                    AppendRequest(
                        session_id=sid,
                        role="assistant",
                        content=mid * rng.randint(1, 20),
                        message_id=mid,
                    )
                )
                _emit(out_fd, "ack", sid, mid, r.seq, int(r.duplicate))
                if rng.random() < 0.3:
                    r = store.update(UpdateRequest(session_id=sid, title=f"t{rnd}", tags=[mid]))
                    _emit(out_fd, "upd", sid, r.seq)
            if args["whole"] and rnd % 2:
                store.compact_all()  # the CLI's path: snapshots from the files on disk
            else:
                store.compact()
    elif mode == "delete":
        for sid in args["sessions"]:
            _emit(out_fd, "deleting", sid)
            store.delete(sid)
            _emit(out_fd, "deleted", sid)
    elif mode == "start":  # killed inside journal.create, before its first write
        from eventlog.backends.file import syscalls

        calls = 0
        real_write = syscalls.write

        def write(fd: int, data: bytes) -> int:
            nonlocal calls
            calls += 1
            if calls == args["kill_at"]:
                os.kill(os.getpid(), 9)
            return real_write(fd, data)

        syscalls.write = write
        for _ in range(args["kill_at"] + 1):
            _emit(out_fd, "started", store.start(StartRequest()).session_id)
    elif mode == "import":
        _emit(out_fd, "importing")
        ids = store.import_events(Path(args["file"]).read_bytes())
        _emit(out_fd, "imported", *ids)
    else:
        raise ValueError(mode)
    store.close()


ZYGOTE = textwrap.dedent("""
    import importlib, json, os, sys, traceback
    import eventlog.backends.file.faults, eventlog.backends.file.store
    from tests.test_faults_crash import child_main
    for line in sys.stdin:
        cmd = json.loads(line)
        out = os.open(cmd["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.environ.update(cmd["env"])
                importlib.reload(eventlog.backends.file.faults)
                child_main(cmd["mode"], cmd["root"], cmd["args"], out)
            except BaseException:
                os.write(out, ("error " + traceback.format_exc().replace("\\n", " | ") + "\\n").encode())
                code = 3
            os._exit(code)
        os.close(out)
        _, status = os.waitpid(pid, 0)
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1
        print(json.dumps({"signal": sig, "code": code}), flush=True)
""")


class Zygote:
    """A pre-imported process that forks one child per crash."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [PYTHON, "-c", ZYGOTE],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={k: v for k, v in os.environ.items() if not k.startswith("SESSIONLOG_")},
        )
        self.n = 0

    def run(
        self, tmp: Path, mode: str, root: Path, args: dict[str, Any], crash_at: str
    ) -> tuple[bool, list[list[str]]]:
        """Run one child; returns (was it SIGKILLed, the lines it reported)."""
        self.n += 1
        out = tmp / f"child-{self.n}.out"
        cmd = {
            "mode": mode,
            "root": str(root),
            "args": args,
            "out": str(out),
            "env": {"SESSIONLOG_CRASH_AT": crash_at},
        }
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        status = json.loads(self.proc.stdout.readline())
        lines = [ln.split(" ") for ln in out.read_text().splitlines()] if out.exists() else []
        errors = [" ".join(ln) for ln in lines if ln[0] == "error"]
        assert not errors, f"child failed instead of crashing: {errors}"
        assert status["signal"] in (0, 9), status
        assert status["signal"] == 9 or status["code"] == 0, status
        return status["signal"] == 9, lines

    def close(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def zygote() -> Iterator[Zygote]:
    z = Zygote()
    yield z
    z.close()


# -- checks ----------------------------------------------------------------------------------


def snapshots(root: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in (root / "sessions").glob("*/*.json")}


def assert_verify_clean(root: Path) -> None:
    """verify: no problem at all, except a torn tail (cut off by the next append)."""
    _, problems = verify(root)
    bad = [f"{p.path}: {p.what}" for p in problems if "torn write" not in p.what]
    assert not bad, bad


def assert_snapshots_old_or_new(root: Path, before: dict[str, bytes]) -> None:
    """Each snapshot parses; if it changed, it is a correct one for its journal (verify
    folds the journal to its seq and compares) that is not behind the old one."""
    for path, data in snapshots(root).items():
        journal = path + "l"
        snap = read_snapshot(journal)
        assert snap is not None, f"{path} does not parse"
        if path in before and data != before[path]:
            old = decoder_snapshot(before[path])
            assert snap.seq >= old.seq, f"{path} went back from seq {old.seq} to {snap.seq}"
        assert os.path.exists(journal), f"{path}: a snapshot without its journal"


def decoder_snapshot(data: bytes) -> Any:
    import msgspec

    from eventlog.model import Snapshot

    return msgspec.json.decode(data, type=Snapshot)


TEMP_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(json\.tmp|jsonl\.import|jsonl\.new)-\d+-[0-9a-f]{8}$")


def leftovers(root: Path, temps_ok: bool = True) -> list[str]:
    """Files under sessions/ that are not journals, snapshots or torn tails. A kill in
    the middle of a snapshot write (at any point, e.g. while another thread appends)
    leaves its temp file until the next open sweeps it (``temps_ok`` allows them)."""
    return [
        p.name
        for p in (root / "sessions").rglob("*")
        if p.is_file()
        and not p.name.endswith((".jsonl", ".json", ".jsonl.torn"))
        and not (temps_ok and TEMP_RE.match(p.name))
    ]


@dataclass
class Acks:
    """What children reported, across cycles: acked (sid, mid) -> seq, and tries."""

    acked: dict[tuple[str, str], int] = field(default_factory=dict)
    tried: set[tuple[str, str]] = field(default_factory=set)

    def add(self, lines: list[list[str]]) -> None:
        for ln in lines:
            if ln[0] == "try":
                self.tried.add((ln[1], ln[2]))
            elif ln[0] == "ack":
                key, seq = (ln[1], ln[2]), int(ln[3])
                assert self.acked.get(key, seq) == seq, f"{key} acked at {self.acked[key]}, {seq}"
                self.acked[key] = seq

    def unacked(self) -> list[tuple[str, str]]:
        return sorted(self.tried - self.acked.keys())


def journal_events(store: Store, sid: str) -> list[Any]:
    found = read_tail(store.path_of(sid), 0, 0)
    assert not found.bad, found.bad
    return found.events


def assert_acks_hold(root: Path, acks: Acks, sids: list[str]) -> None:
    """Every acknowledged append is present exactly once, at its acked seq; seq 1..N;
    tried-but-unacknowledged appends are present at most once."""
    with Store(root, background=False, reconcile=False) as s:
        for sid in sids:
            evs = journal_events(s, sid)
            assert [e.seq for e in evs] == list(range(1, len(evs) + 1)), f"{sid}: seq gap"
            where: dict[str, list[int]] = {}
            for e in evs:
                if isinstance(e, MessageAppended):
                    where.setdefault(e.data.message_id, []).append(e.seq)
            dups = {m: q for m, q in where.items() if len(q) > 1}
            assert not dups, f"{sid}: appended twice: {dups}"
            for (asid, mid), seq in acks.acked.items():
                if asid == sid:
                    assert where.get(mid) == [seq], (
                        f"acked {mid}@{seq} but journal has {where.get(mid)}"
                    )
            loaded = s.load(sid).session
            assert loaded.seq == len(evs)
            ids = [m.message_id for m in loaded.messages]
            assert len(ids) == len(set(ids))
            assert {m for (a, m) in acks.acked if a == sid} <= set(ids)


# -- tests ---------------------------------------------------------------------------------


def _sessions(root: Path, n: int) -> list[str]:
    with Store(root, background=False) as s:
        return [s.start(StartRequest(title=f"s{i}")).session_id for i in range(n)]


@pytest.mark.parametrize("point", ["journal.after_write", "journal.after_fsync"])
def test_kill_at_journal_point_loses_no_acknowledged_append(
    zygote: Zygote, tmp_path: Path, point: str
) -> None:
    root = tmp_path / "memory"
    sids = _sessions(root, 2)
    rng = random.Random(point)
    acks = Acks()
    crashes = 0
    for cycle in range(CRASHES_PER_POINT + 2):
        before = snapshots(root)
        threads = rng.choice([1, 1, 2, 3])
        args = {
            "seed": cycle,
            "sessions": sids,
            "threads": threads,
            "tag": f"c{cycle}",
            "retry": acks.unacked(),
            "limit": 500,
            "compact_every": rng.choice([0, 0, 3, 7]),
        }
        n = rng.randint(1, 40)
        killed, lines = zygote.run(tmp_path, "append", root, args, f"{point}:{n}")
        crashes += killed
        acks.add(lines)
        # retried appends are answered as duplicates or written once, never twice
        assert_verify_clean(root)
        assert_snapshots_old_or_new(root, before)
        assert_acks_hold(root, acks, sids)
    assert crashes >= CRASHES_PER_POINT
    assert len(acks.acked) > 3 * CRASHES_PER_POINT  # the loops really ran
    assert not leftovers(root, temps_ok=False), leftovers(root)  # reopening swept them


@pytest.mark.parametrize("point", ["snapshot.after_temp", "snapshot.after_rename"])
def test_kill_at_snapshot_point_leaves_old_or_new_snapshot(
    zygote: Zygote, tmp_path: Path, point: str
) -> None:
    root = tmp_path / "memory"
    sids = _sessions(root, 4)
    rng = random.Random(point)
    acks = Acks()
    crashes = 0
    for cycle in range(CRASHES_PER_POINT + 2):
        before = snapshots(root)
        args = {
            "seed": cycle,
            "sessions": sids,
            "tag": f"c{cycle}",
            "rounds": 50,
            "whole": rng.random() < 0.4,
        }
        killed, lines = zygote.run(tmp_path, "compact", root, args, f"{point}:{rng.randint(1, 12)}")
        crashes += killed
        acks.add(lines)
        assert_verify_clean(root)
        assert_snapshots_old_or_new(root, before)
        assert_acks_hold(root, acks, sids)
        # a snapshot-aware load equals a fold of the whole journal
        with Store(root, background=False, reconcile=False) as s:
            from eventlog.backends.file.snapshot import load_cold

            for sid in sids:
                path = s.path_of(sid)
                assert load_cold(path, sid)[0] == load_cold(path, sid, use_snapshot=False)[0]
    assert crashes >= CRASHES_PER_POINT
    assert len(snapshots(root)) == len(sids)
    assert not leftovers(root, temps_ok=False), leftovers(root)  # reopening swept them


def _with_messages(s: Store, rng: random.Random, k: int) -> list[str]:
    sids = []
    for i in range(k):
        sid = s.start(StartRequest(title=f"d{i}")).session_id
        for j in range(rng.randint(0, 4)):
            s.append(AppendRequest(session_id=sid, role="user", content=f"{i}-{j}"))
        sids.append(sid)
    return sids


def test_kill_mid_delete_leaves_each_session_fully_there_or_fully_gone(
    zygote: Zygote, tmp_path: Path
) -> None:
    rng = random.Random(7)
    crashes = 0
    for cycle in range(CRASHES_PER_POINT + 2):
        root = tmp_path / f"d{cycle}"
        with Store(root, background=False) as s:
            sids = _with_messages(s, rng, rng.randint(2, 5))
            if rng.random() < 0.8:
                s.compact()  # most sessions have a snapshot to leave behind
            with open(s.path_of(sids[0]), "ab") as f:
                f.write(b'{"seq": 99, "torn')  # and a torn tail, cut aside on next write
            s.append(AppendRequest(session_id=sids[0], role="user", content="after torn"))
            before = {sid: s.load(sid).session for sid in sids}
        assert os.path.exists(s.path_of(sids[0]) + ".torn")
        order = rng.sample(sids, len(sids))
        n = rng.randint(1, len(sids))
        killed, lines = zygote.run(
            tmp_path, "delete", root, {"seed": cycle, "sessions": order}, f"delete.after_rename:{n}"
        )
        crashes += killed
        deleted = {ln[1] for ln in lines if ln[0] == "deleted"}
        in_flight = {ln[1] for ln in lines if ln[0] == "deleting"} - deleted
        assert len(deleted) == n - 1 and len(in_flight) == 1
        assert_verify_clean(root)
        with Store(root, background=False) as s:  # reopening empties the trash
            listed = {r.session_id for r in s.list().sessions}
            for sid in sids:
                try:
                    now = s.load(sid).session
                except SessionNotFound:
                    assert sid not in listed
                    assert not list(root.rglob(f"{sid}*")), list(root.rglob(f"{sid}*"))
                    continue
                assert sid not in deleted, f"{sid} was acknowledged as deleted but loads"
                assert now == before[sid]
                assert sid in listed
                s.append(AppendRequest(session_id=sid, role="user", content="still works"))
        assert not os.listdir(root / "trash")
    assert crashes >= CRASHES_PER_POINT


def test_kill_mid_import_leaves_each_session_fully_imported_or_absent(
    zygote: Zygote, tmp_path: Path
) -> None:
    rng = random.Random(11)
    crashes = 0
    for cycle in range(CRASHES_PER_POINT + 2):
        src = tmp_path / f"src{cycle}"
        with Store(src, background=False) as s:
            sids = _with_messages(s, rng, rng.randint(2, 5))
            s.update(UpdateRequest(session_id=sids[-1], title="renamed", tags=["x"]))
            data = b"".join(s.export(ExportRequest(all=True, format="events")))
            want = {sid: s.load(sid).session for sid in sids}
        export_file = tmp_path / f"export{cycle}.jsonl"
        export_file.write_bytes(data)
        root = tmp_path / f"dst{cycle}"
        Layout(root)
        n = rng.randint(1, len(sids))
        killed, lines = zygote.run(
            tmp_path,
            "import",
            root,
            {"seed": cycle, "file": str(export_file)},
            f"import.after_first:{n}",
        )
        crashes += killed
        assert not any(ln[0] == "imported" for ln in lines)
        assert_verify_clean(root)
        assert not leftovers(root), leftovers(root)
        present = 0
        with Store(root, background=False) as s:
            for sid in sids:
                try:
                    got = s.load(sid).session
                except SessionNotFound:
                    continue
                present += 1
                assert got == want[sid]
            assert {r.session_id for r in s.list().sessions} == {
                sid for sid in sids if s.layout.find(sid)
            }
        assert present == n  # the n-th reach is after the n-th session was committed
    assert crashes >= CRASHES_PER_POINT


def test_child_really_reports_only_after_the_call_returned() -> None:
    """The ack protocol itself: a line is one write(2), so a kill cannot half-write it."""
    r, w = os.pipe()
    _emit(w, "ack", "s", "m", 3, 0)
    os.close(w)
    assert os.read(r, 100) == b"ack s m 3 0\n"
    os.close(r)


def test_delete_crash_after_commit_leaves_no_orphan_snapshot(
    zygote: Zygote, tmp_path: Path
) -> None:
    """Regression: delete used to remove the snapshot only after renaming the journal
    into the trash, so a kill between the two left ``{id}.json`` (the full canonical
    session, in the seed's file format) without its journal: the deleted conversation
    stayed readable by any tool reading the storage layout, and verify reported
    "snapshot without a journal". The snapshot now goes before the commit point."""
    root = tmp_path / "memory"
    with Store(root, background=False) as s:
        sid = s.start(StartRequest(title="secret")).session_id
        s.append(AppendRequest(session_id=sid, role="user", content="delete me"))
        s.compact()
        snap = snapshot_path(s.path_of(sid))
    assert os.path.exists(snap)
    killed, _ = zygote.run(
        tmp_path, "delete", root, {"seed": 0, "sessions": [sid]}, "delete.after_rename:1"
    )
    assert killed
    assert not os.path.exists(snap)
    assert_verify_clean(root)
    with Store(root, background=False) as s, pytest.raises(SessionNotFound):
        s.load(sid)
    assert not list(root.rglob(f"{sid}*"))


def test_temp_files_of_a_killed_snapshot_write_are_swept_on_open(
    zygote: Zygote, tmp_path: Path
) -> None:
    """Regression: every kill in the middle of a snapshot write (any kill while the
    compactor runs, not only at this crash point) left ``{id}.json.tmp-<pid>-<hex>``
    behind, never read and never removed: under repeated crashes the data directory
    filled with copies of the session (the kill -9 stress run left hundreds). Opening
    a store now removes temp files whose process is gone, and keeps a live one's."""
    root = tmp_path / "memory"
    sids = _sessions(root, 2)
    killed, _ = zygote.run(
        tmp_path,
        "compact",
        root,
        {"seed": 1, "sessions": sids, "tag": "t", "rounds": 5, "whole": False},
        "snapshot.after_temp:1",
    )
    assert killed
    stale = [p for p in (root / "sessions").rglob("*") if TEMP_RE.match(p.name)]
    assert len(stale) == 1
    live = stale[0].with_name(f"{sids[0]}.json.tmp-{os.getpid()}-0123abcd")
    live.write_bytes(b"a snapshot being written by a live process")
    Store(root, background=False).close()
    assert not stale[0].exists()
    assert live.exists()


def test_a_start_killed_before_its_first_write_leaves_no_empty_journal(
    zygote: Zygote, tmp_path: Path
) -> None:
    """Regression (found by bench/stress.py, cycle 273 of 1,000): ``start`` created the
    journal with O_CREAT and then wrote its session.started line; a kill in between
    left an empty ``{id}.jsonl``: a session file without a session, reported by verify
    ("no readable event") forever, and loading it is a journal_corrupt error. The line
    is now written and fsynced in a temp file that is linked into place."""
    root = tmp_path / "memory"
    _sessions(root, 1)
    for kill_at in (1, 2, 3):
        killed, lines = zygote.run(
            tmp_path, "start", root, {"seed": 0, "kill_at": kill_at}, "none:1"
        )
        assert killed
        assert len([ln for ln in lines if ln[0] == "started"]) == kill_at - 1
        assert not [p for p in root.rglob("*.jsonl") if p.stat().st_size == 0]
        assert_verify_clean(root)
    with Store(root, background=False) as s:
        assert s.list().total_sessions == 1 + 0 + 1 + 2
    assert not leftovers(root, temps_ok=False)  # the killed starts' temp files are swept
