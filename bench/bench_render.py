"""Markdown rendering for the page (server/markdown.py), beside same-run anchors.

    .venv/bin/python bench/bench_render.py

Prints the median time to render and sanitise messages of a few shapes, next to two
anchors measured in the same run: markdown-it-py alone (no sanitiser) and a plain
``html.escape`` of the same text (what showing it as plain text would cost).
"""

from __future__ import annotations

import html
import os

from common import median_ms

from server.markdown import _md, render

SHAPES = {
    "one line (75 B)": "Tomorrow in Lisbon: sunny, 21 °C, with a light breeze from the north-west.",
    "prose (110 KB)": ("Just a paragraph of plain prose with some words in it. " * 20 + "\n\n")
    * 100,
    "tables + code (4.5 KB)": (
        "Some **bold** text with `code` and a [link](https://example.org).\n\n"
        "| a | b |\n|--|--|\n| 1 | 2 |\n\n```py\nx = 1\n```\n\n"
    )
    * 40,
}


def main() -> None:
    print(f"load average: {os.getloadavg()}")
    print(f"{'message':<24} {'render+sanitise':>16} {'markdown-it only':>17} {'escape':>9}")
    for name, text in SHAPES.items():
        runs = 300 if len(text) < 1000 else 30
        full = median_ms(lambda t=text: render(t), runs)
        md = median_ms(lambda t=text: _md.render(t), runs)
        esc = median_ms(lambda t=text: html.escape(t), runs)
        print(f"{name:<24} {full:>13.3f} ms {md:>14.3f} ms {esc:>6.3f} ms")


if __name__ == "__main__":
    main()
