"""Progress bars for long CLI work (tqdm), on stderr and only when it is a terminal: piped
or redirected output stays free of carriage returns and bar frames."""

from __future__ import annotations

import os
import sys
import threading
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


class Phases:
    """One bar per phase for work that reports ``(phase, done, total)`` (an import reads,
    then writes); safe to call from the worker threads such work runs in."""

    def __init__(self, unit: str = "session") -> None:
        self._unit = unit
        self._bars: dict[str, tqdm] = {}
        self._lock = threading.Lock()

    def __call__(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            bar = self._bars.get(phase)
            if bar is None:
                for other in self._bars.values():
                    other.close()  # phases follow each other: finish the one before
                bar = self._bars[phase] = tqdm(
                    total=total,
                    desc=phase,
                    unit=" B" if phase == "reading" else f" {self._unit}s",
                    unit_scale=phase == "reading",
                    file=sys.stderr,
                    disable=not live(),
                    ncols=_size()[0],
                    nrows=_size()[1],
                )
            bar.total = total
            if done > bar.n:
                bar.update(done - bar.n)

    def close(self) -> None:
        with self._lock:
            for bar in self._bars.values():
                bar.close()
