"""Typed keys for what the app keeps in its state (shared by handlers and tasks)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from eventlog.backend import Backend

from .config import Config
from .fanout import Broker
from .security import Guard

if TYPE_CHECKING:
    from .ws import Connection

CONFIG = web.AppKey("config", Config)
BACKEND = web.AppKey("backend", Backend)
BROKER = web.AppKey("broker", Broker)
GUARD = web.AppKey("guard", Guard)
CONNECTIONS = web.AppKey("connections", set["Connection"])
