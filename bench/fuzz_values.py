"""Values for bench/fuzz.py: each request field valid, missing, of a wrong type or at an
edge, drawn with hypothesis from the engine's request Structs."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from hypothesis import strategies as st

# -- values ----------------------------------------------------------------------------------

TRICKY_IDS = [
    "..",
    "../..",
    "../../../../etc/passwd",
    "a/b",
    "a\\b",
    "%2e%2e",
    "%2F",
    "\x00",
    "a\x00b",
    "",
    " ",
    "a" * 64,
    "a" * 65,
    "CON",
    "nul",
    ".",
    "~root",
    "\uff41\uff42\uff43",
    "abc\n",
    "-",
    "_",
    "id with space",
    "😀",
    "..%2F..%2F",
    "index.sqlite3",
    "sessions",
    "trash",
    "\ud800",
    "sessions/../../x",
    "/etc/passwd",
    "C:\\Windows",
    "x.jsonl",
    "*",
    "?",
]
EDGE_INTS = [
    0,
    -1,
    1,
    2**31 - 1,
    2**31,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    -(10**30),
]
EDGE_STRINGS = [
    "",
    " ",
    "\x00",
    "\ud800",
    "a\udfffb",
    "\u202e",
    "\ufeff",
    "😀" * 50,
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    '"',
    "\\",
    "NEAR(a b)",
    "a* OR b",
    '"unterminated',
    "-x",
    "x" * 10_000,
    "\n" * 100,
    "${jndi:ldap://x}",
]
EDGE_FLOATS = [float("nan"), float("inf"), float("-inf"), 1e308, -0.0, 0.5, 1e-320]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(EDGE_STRINGS),
)
json_values = st.recursive(
    json_scalars,
    lambda c: st.lists(c, max_size=5) | st.dictionaries(st.text(max_size=12), c, max_size=5),
    max_leaves=12,
)


class Pool:
    """Ids the fuzzer has seen, so that fuzzed requests hit real sessions too."""

    def __init__(self) -> None:
        self.sessions: list[str] = []
        self.messages: list[str] = ["m1", "m2"]

    def add_session(self, sid: str) -> None:
        if sid not in self.sessions:
            self.sessions.append(sid)
            del self.sessions[:-50]

    def add_message(self, mid: str) -> None:
        if mid not in self.messages:
            self.messages.append(mid)
            del self.messages[:-50]


def pick(draw: Any, items: list[Any], default: Any) -> Any:
    """An element of a list that changes as the fuzzer runs. The draw itself must not
    depend on it (same choices, same shape, or hypothesis calls the strategy flaky): an
    index from a fixed range, taken modulo the current length."""
    i = draw(st.integers(0, 1 << 16))
    return items[i % len(items)] if items else default


@st.composite
def from_pool(draw: Any, items: list[Any], default: Any) -> Any:
    return pick(draw, items, default)


@st.composite
def session_ids(draw: Any, pool: Pool) -> Any:
    k = draw(st.integers(0, 9))
    if k < 6:
        return pick(draw, pool.sessions, "nosuchsession")
    if k < 8:
        return draw(st.sampled_from(TRICKY_IDS))
    if k == 8:
        return draw(st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z"))
    return draw(st.text(max_size=80))


def _ids(pool: Pool) -> Any:
    return st.one_of(
        from_pool(pool.messages, "m"),
        st.from_regex(r"\A[a-z0-9]{1,8}\Z"),
        st.sampled_from(TRICKY_IDS),
    )


def _dates() -> Any:
    return st.one_of(
        st.sampled_from(
            [
                "2026-01-01",
                "2026-11-23T10:00:00Z",
                "1970-01-01",
                "9999-12-31",
                "2026-13-45",
                "yesterday",
                "",
                "2026-01-01T00:00:00.000Z",
            ]
        ),
        st.text(max_size=20),
    )


def valid_value(name: str, pool: Pool) -> Any:
    """A plausible value for a request field, by its name (the usual case)."""
    text = st.one_of(st.text(max_size=200), st.sampled_from(EDGE_STRINGS))
    small = st.one_of(st.integers(0, 50), st.sampled_from(EDGE_INTS))
    by_name: dict[str, Any] = {
        "session_id": session_ids(pool),
        "session_ids": st.lists(session_ids(pool), max_size=4),
        "message_id": _ids(pool),
        "id": _ids(pool),
        "role": st.sampled_from(["user", "assistant", "system", "tool", "robot", "", "USER"]),
        "content": text,
        "message": text,
        "title": text,
        "user_name": text,
        "query": text,
        "type": st.sampled_from(["chat", "voice", "", "x" * 100]),
        "tag": text,
        "tags": st.lists(text, max_size=5),
        "metadata": st.dictionaries(st.text(max_size=10), json_values, max_size=4),
        "details": json_values,
        "format": st.sampled_from(["openai", "sharegpt", "events", "markdown", "csv", ""]),
        "mode": st.sampled_from(["append", "replace", "prepend", ""]),
        "since": _dates(),
        "until": _dates(),
        "timestamp": _dates(),
        "messages": st.lists(
            st.fixed_dictionaries(
                {"role": st.sampled_from(["user", "assistant"]), "content": text},
                optional={"message_id": _ids(pool), "metadata": json_values, "timestamp": _dates()},
            ),
            max_size=4,
        ),
        "token": text,
    }
    if name in by_name:
        return by_name[name]
    if name in ("limit", "offset", "expected_seq", "message_limit", "message_before", "after_seq"):
        return small
    if name in ("all", "partial", "pinned", "archived"):
        return st.one_of(st.booleans(), st.none())
    return json_values


def wrong_value(name: str) -> Any:
    """A value of the wrong type or out of range for the field."""
    return st.one_of(
        json_values,
        st.sampled_from(EDGE_INTS),
        st.sampled_from(EDGE_FLOATS),
        st.sampled_from(TRICKY_IDS),
        st.lists(st.integers(), max_size=3),
    )


@st.composite
def struct_body(draw: Any, kind: type | None, pool: Pool, extra_fields: dict[str, Any]) -> Any:
    """A JSON object for ``kind``'s fields, each valid, missing, wrong or at an edge."""
    obj: dict[str, Any] = dict(extra_fields)
    names = [f.name for f in msgspec.structs.fields(kind)] if kind is not None else []
    for name in names:
        mode = draw(st.sampled_from(["valid"] * 5 + ["omit", "omit", "wrong"]))
        if mode == "valid":
            obj[name] = draw(valid_value(name, pool))
        elif mode == "wrong":
            obj[name] = draw(wrong_value(name))
    if draw(st.integers(0, 9)) == 0:
        obj.update(draw(st.dictionaries(st.text(max_size=10), json_values, max_size=3)))
    return obj


def dumps(value: Any) -> bytes:
    """JSON as a careless client would send it (NaN/Infinity and lone surrogates pass)."""
    try:
        return json.dumps(value, allow_nan=True).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError):
        return b'{"unserialisable": true}'
