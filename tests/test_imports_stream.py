"""``eventlog.imports.stream.array_items``: the items of a large export's JSON array,
decoded by msgspec, with ijson taking over wherever msgspec refuses. Whatever the
bytes, it must yield what ijson yields and fail where and as ijson fails (the import's
values and error messages did not change when msgspec came in); the one difference:
integers beyond 64 bits, which yajl refuses ("integer overflow"), are read."""

from __future__ import annotations

import io
import json
from typing import Any

import ijson  # type: ignore[import-untyped]
from hypothesis import given
from hypothesis import strategies as st

from eventlog.imports import stream

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63) + 1, 2**63 - 1)  # yajl overflows at -2**63: see the test below
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


def _outcome(items: Any) -> tuple[list[Any], str | None]:
    """What came out before any error, and the error's first line (yajl's own words)."""
    out: list[Any] = []
    try:
        for x in items:
            out.append(x)
    except UnicodeDecodeError as e:  # yajl, on a lone low surrogate
        return out, str(e)
    except ijson.JSONError as e:
        said = e.args[0] if e.args else ""  # yajl's message; bytes when the spot is not UTF-8
        if isinstance(said, bytes):
            said = said.decode("utf-8", "replace")
        return out, str(said).split("\n")[0]
    return out, None


def _both(data: bytes, chunk: int) -> tuple[Any, Any]:
    old = _outcome(ijson.items(io.BytesIO(data), "item", use_float=True))
    saved = stream.CHUNK
    stream.CHUNK = chunk
    try:
        new = _outcome(stream.array_items(io.BytesIO(data)))
    finally:
        stream.CHUNK = saved
    return old, new


@given(
    items=st.lists(_json, max_size=6),
    indent=st.sampled_from([None, 0, 2]),
    chunk=st.integers(1, 64),
    cut=st.none() | st.integers(0, 10_000),
    garbage=st.none()
    | st.tuples(st.integers(0, 10_000), st.sampled_from([b",", b"]", b"x", b"{", b"\\"])),
)
def test_array_items_yields_and_fails_exactly_as_ijson(
    items: list[Any],
    indent: int | None,
    chunk: int,
    cut: int | None,
    garbage: tuple[int, bytes] | None,
) -> None:
    data = json.dumps(items, indent=indent, ensure_ascii=False).encode()
    if garbage is not None:
        at = garbage[0] % (len(data) + 1)
        data = data[:at] + garbage[1] + data[at:]
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    old, new = _both(data, chunk)
    assert new == old


def test_what_msgspec_refuses_ijson_reads_on() -> None:
    """A lone surrogate (msgspec refuses it, yajl writes "?"), trailing commas and
    garbage after the array: values and errors as ijson's, at every chunk size."""
    for data in (
        b'[{"a": 1}, {"b": "\\ud800"}, 3]',
        b'["\\udc00"]',
        b"[1,]",
        b"[1 2]",
        b"[1] x",
        b"[] x",
        b"[1,,2]",
        b"[nan]",
        b"[1",
        b"[",
    ):
        for chunk in (1, 3, 1 << 20):
            old, new = _both(data, chunk)
            assert new == old, (data, chunk)


def test_an_item_past_the_buffer_limit_is_left_to_ijson(monkeypatch: Any) -> None:
    monkeypatch.setattr(stream, "MAX_ITEM", 100)
    data = json.dumps([{"t": "x" * 50}, {"t": "y" * 500}, {"t": "z"}]).encode()
    assert _both(data, 16) == ((json.loads(data), None),) * 2


def test_msgspec_says_where_an_item_ends() -> None:
    """The fast path reads the end of an item from msgspec's "trailing characters"
    error; if a msgspec release words it otherwise, every import would quietly fall
    back to ijson (correct, but half the speed): this says so instead."""
    data = b'{"a": [1, "]"]}  , {"b": 2}]'
    assert stream._item_end(data, 0) == data.index(b"  ,") + 2
    assert stream._item_end(b'{"a": 1', 0) == stream._MORE
    assert stream._item_end(b'{"a" 1}, 2', 0) is None


def test_integers_beyond_64_bits_are_read_where_yajl_overflowed() -> None:
    data = b"[-9223372036854775808, 123456789012345678901234567890]"
    assert list(stream.array_items(io.BytesIO(data))) == json.loads(data)
