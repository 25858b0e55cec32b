"""Progress bars for long CLI work (tqdm), on stderr and only when it is a terminal: piped
or redirected output stays free of carriage returns and bar frames."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm import tqdm


def live() -> bool:
    return sys.stderr.isatty()


def _size() -> tuple[int, int]:
    """The terminal's columns and rows; 80 by 24 for one that reports none (a bare
    pseudo-terminal says 0 by 0, and tqdm then draws nothing at all)."""
    try:
        size = os.get_terminal_size(sys.stderr.fileno())
    except OSError:
        return 80, 24
    return size.columns or 80, size.lines or 24


@contextmanager
def progress(label: str, total: int | None, unit: str = "session") -> Iterator[tqdm]:
    """A bar (``.update(n)``); a silent one when stderr is not a terminal."""
    bar = tqdm(
        total=total,
        desc=label,
        unit=f" {unit}s" if unit == "session" else unit,
        unit_scale=unit == "B",
        file=sys.stderr,
        disable=not live(),
        leave=True,
        ncols=_size()[0],
        nrows=_size()[1],
    )
    try:
        yield bar
    finally:
        bar.close()


def counter(bar: tqdm) -> Callable[[int], None]:
    """A callback for engine loops that report how many they have done so far."""

    def show(done: int) -> None:
        if done > bar.n:
            bar.update(done - bar.n)

    return show
