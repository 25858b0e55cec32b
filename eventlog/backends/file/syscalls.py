"""The system calls a journal's durability rests on, in one place.

Module-level so fault-injection tests can replace them (``monkeypatch.setattr(syscalls,
"fdatasync", …)``); the engine always calls them through this module.
"""

from __future__ import annotations

import os
from collections.abc import Callable

fdatasync: Callable[[int], None] = os.fdatasync
write: Callable[[int, bytes], int] = os.write
