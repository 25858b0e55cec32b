"""A journal's id maps (``SessionState.event_ids`` and friends) split in two: the ids
of events since the last compaction in memory, the older ones in the ``IdStore``.

``ops`` reads them as plain dicts (``in``, ``[]``, ``get``); a miss in memory asks the
id store, once anything of this journal has been moved there (``moved_upto``). So an
open session holds its recent ids only, and a journal opened from its snapshot never
reads the lines before it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_MISSING: Any = object()


class Layered(dict[str, Any]):
    """A dict whose misses fall back to ``lookup`` (None: not there either)."""

    __slots__ = ("lookup",)

    def __init__(self, lookup: Callable[[str], Any]) -> None:
        super().__init__()
        self.lookup = lookup

    def __missing__(self, key: str) -> Any:
        value = self.lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return dict.__contains__(self, key) or (
            isinstance(key, str) and self.lookup(key) is not None
        )

    def get(self, key: str, default: Any = None) -> Any:
        value = dict.get(self, key, _MISSING)
        if value is _MISSING:
            value = self.lookup(key)
        return default if value is None else value

    def drop(self, keep: Callable[[str, Any], bool]) -> None:
        """Forget the in-memory entries ``keep`` says no to (moved to the id store)."""
        for k in [k for k, v in self.items() if not keep(k, v)]:
            del self[k]
