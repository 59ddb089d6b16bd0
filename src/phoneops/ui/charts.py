"""Small server-side SVG charts (no JavaScript, no third-party assets)."""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from markupsafe import Markup

PALETTE = ("#2563eb", "#16a34a", "#dc2626", "#d97706", "#7c3aed", "#0891b2", "#4b5563")


def bar_chart(data: Mapping[str, float], *, width: int = 480, bar_height: int = 22, title: str = "") -> Markup:
    """A horizontal bar chart; labels and values are escaped."""
    items = list(data.items())
    if not items:
        return Markup('<p class="muted">No data yet.</p>')
    peak = max((float(v) for _, v in items), default=0.0) or 1.0
    label_w, gap = 130, 6
    height = len(items) * (bar_height + gap) + 4
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="{escape(title or "chart")}">'
    ]
    for i, (label, value) in enumerate(items):
        y = i * (bar_height + gap) + 2
        w = max(1.0, (width - label_w - 70) * float(value) / peak)
        color = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<text x="0" y="{y + bar_height * 0.7:.0f}" font-size="13">{escape(str(label))[:18]}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_height}" fill="{color}" rx="3"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_height * 0.7:.0f}" font-size="13">'
            f"{escape(f'{value:,.0f}' if float(value).is_integer() else f'{value:,.2f}')}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label and value above is escaped
