"""The branch of a conversation tree that the user last saw (ChatGPT, Open WebUI, and
Claude exports that carry parent links)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from .conversation import iso
from .errors import Malformed


def newest_leaf(
    nodes: dict[str, Any],
    children_of: Callable[[dict[str, Any]], Any],
    time_of: Callable[[dict[str, Any]], float],
) -> str | None:
    """A node without children here, the newest by its own time (the last one listed
    on a tie); the newest node of all if a cycle leaves no leaf."""
    best: tuple[float, str] | None = None
    fallback: tuple[float, str] | None = None
    for node_id, node in nodes.items():
        if not isinstance(node, dict):
            continue
        key = (time_of(node), node_id)
        children = children_of(node)
        if not isinstance(children, list) or not any(
            isinstance(c, str) and c in nodes for c in children
        ):
            best = key if best is None or key[0] >= best[0] else best
        fallback = key if fallback is None or key[0] >= fallback[0] else fallback
    chosen = best or fallback
    return None if chosen is None else chosen[1]


def branch(
    nodes: dict[str, Any],
    current: Any,
    parent_of: Callable[[dict[str, Any]], Any],
    children_of: Callable[[dict[str, Any]], Any],
    time_of: Callable[[dict[str, Any]], float],
) -> list[dict[str, Any]]:
    """The nodes from the root down to ``current`` (or, if that is missing or dangling,
    to the newest leaf), in order. Times never order anything: parent links do. A
    cycle ends the walk instead of looping."""
    if not isinstance(current, str) or current not in nodes:
        current = newest_leaf(nodes, children_of, time_of)
    path: list[dict[str, Any]] = []
    seen: set[str] = set()
    node_id = current
    while isinstance(node_id, str) and node_id in nodes and node_id not in seen:
        seen.add(node_id)
        node = nodes[node_id]
        if not isinstance(node, dict):
            raise Malformed(f"node {node_id!r} is not an object")
        path.append(node)
        node_id = parent_of(node)
    path.reverse()
    return path


def number(value: Any) -> float:
    """A sortable time from an epoch number or an ISO string (-inf when absent)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) / (1000.0 if value > 1e11 else 1.0)
    if isinstance(value, str):
        t = iso(value)
        if t is not None:
            return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
    return float("-inf")
