"""Small server-side SVG charts (no JavaScript, no third-party assets).

Bars are keyed by an id (a campaign id, a list name, a status) and drawn with a readable label; colour
follows meaning (blacklist red, whitelist green, failed red ...), never the row's position; every bar has
a tooltip (SVG `<title>`) with the full label and value.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

from markupsafe import Markup

NEUTRAL = "#2563eb"
# Colour by meaning: the same word is the same colour on every page.
MEANING: dict[str, str] = {
    "blacklist": "#dc2626", "monitor": "#d97706", "whitelist": "#16a34a",
    "succeeded": "#16a34a", "failed": "#dc2626", "cancelled": "#6b7280", "running": "#2563eb",
    "queued": "#93c5fd", "waiting": "#d97706",
    "completed": "#16a34a", "rejected": "#dc2626", "pending": "#93c5fd", "in process": "#2563eb",
    "kept": "#16a34a", "clean": "#16a34a", "invalid": "#dc2626", "duplicate": "#d97706", "removed": "#dc2626",
    "live": "#16a34a", "dead": "#dc2626", "absent": "#d97706", "unknown": "#6b7280", "?": "#6b7280",
    "reg": "#2563eb", "ftd": "#16a34a",
}
LABEL_CHARS = 40


def colour_for(key: str) -> str:
    return MEANING.get(key.strip().lower(), NEUTRAL)


def _number(value: float, unit: str = "") -> str:
    v = float(value)
    text = f"{v:,.0f}" if v.is_integer() else f"{v:,.2f}"
    return text + unit


def _short(label: str, chars: int = LABEL_CHARS) -> str:
    """Long names shortened in the middle: names of one family differ at their end ("... - GB - Y")."""
    if len(label) <= chars:
        return label
    head = (chars - 1) // 2
    return label[:head].rstrip() + "…" + label[len(label) - (chars - 1 - head):].lstrip()


def bar_chart(
    data: Mapping[str, float],
    *,
    width: int = 640,
    bar_height: int = 22,
    title: str = "",
    labels: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
    unit: str = "",
) -> Markup:
    """A horizontal bar chart of {key: value}; `labels` gives a readable name per key (default: the key),
    `colors` a colour per key (default: by meaning, see MEANING). Labels and values are escaped."""
    items = list(data.items())
    if not items:
        return Markup('<p class="muted">No data yet.</p>')
    peak = max((float(v) for _, v in items), default=0.0) or 1.0
    label_w, gap, value_w = 275, 6, 80
    height = len(items) * (bar_height + gap) + 4
    parts = [
        f'<svg class="chart bar-chart" role="img" viewBox="0 0 {width} {height}" width="100%" '
        f'aria-label="{escape(title or "chart")}">'
    ]
    for i, (key, value) in enumerate(items):
        label = str((labels or {}).get(key, key))
        y = i * (bar_height + gap) + 2
        w = max(1.0, (width - label_w - value_w) * float(value) / peak)
        color = (colors or {}).get(key) or colour_for(str(key))
        shown = _number(value, unit)
        tip = f"<title>{escape(label)}: {escape(shown)}</title>"
        parts.append(
            f'<g data-key="{escape(str(key))}">{tip}'
            f'<text x="0" y="{y + bar_height * 0.7:.0f}" font-size="13">{escape(_short(label))}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_height}" fill="{escape(color)}" rx="3"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + bar_height * 0.7:.0f}" font-size="13">{escape(shown)}</text></g>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label and value above is escaped


def column_chart(
    data: Mapping[str, float], *, height: int = 160, title: str = "", unit: str = "", color: str = NEUTRAL
) -> Markup:
    """A vertical bar chart over an ordered series of ISO days, with a value axis (0 and the peak), day labels
    on the x axis and a tooltip per column. Labels and values are escaped."""
    items = list(data.items())
    if not items or not any(v for _, v in items):
        return Markup('<p class="muted">No data yet.</p>')
    peak = max(float(v) for _, v in items) or 1.0
    width, left, bottom, top = 640, 56, 22, 16
    step = (width - left) / len(items)
    every = max(1, -(-len(items) // 6))  # at most 6 day labels: they never overlap
    parts = [
        f'<svg class="chart column-chart" role="img" viewBox="0 0 {width} {height + bottom}" width="100%" '
        f'style="max-width:100%" aria-label="{escape(title or "chart")}">',
        f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end">{escape(_number(peak, unit))}</text>',
        f'<text x="{left - 6}" y="{height}" font-size="11" text-anchor="end">0</text>',
        f'<line x1="{left}" y1="{top}" x2="{width}" y2="{top}" stroke="#e5e7eb" stroke-dasharray="3 3"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{height}" stroke="#cbd5e1"/>',
        f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#cbd5e1"/>',
    ]
    for i, (label, value) in enumerate(items):
        h = max(0.0, (height - top) * float(value) / peak)
        x = left + i * step
        bar = min(step * 0.8, 48.0)
        parts.append(
            f'<rect x="{x + (step - bar) / 2:.1f}" y="{height - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
            f'fill="{escape(color)}" rx="2"><title>{escape(str(label))}: {escape(_number(value, unit))}</title></rect>'
        )
        if i % every == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{height + 15}" font-size="10" text-anchor="middle">'
                         f"{escape(str(label))}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label and value above is escaped


def cost_revenue_chart(series: list[tuple[str, float, float]], *, height: int = 150, title: str = "") -> Markup:
    """Cost (red) and revenue (green) per day as two lines over ISO days, a value axis (0 and the peak), day
    labels and a tooltip per day. Labels and values are escaped."""
    if not series or not any(c or r for _, c, r in series):
        return Markup('<p class="muted">No cost or revenue in this period.</p>')
    peak = max(max(c, r) for _, c, r in series) or 1.0
    width, left, bottom, top = 640, 56, 22, 12
    step = (width - left) / max(1, len(series) - 1) if len(series) > 1 else 0.0
    every = max(1, -(-len(series) // 6))

    def y(value: float) -> float:
        return height - (height - top) * value / peak

    def points(values: list[float]) -> str:
        return " ".join(f"{left + i * step:.1f},{y(v):.1f}" for i, v in enumerate(values))

    parts = [
        f'<svg class="chart line-chart" role="img" viewBox="0 0 {width} {height + bottom}" width="100%" '
        f'aria-label="{escape(title or "chart")}">',
        f'<text x="{left - 6}" y="{top + 4}" font-size="11" text-anchor="end">{escape(_number(peak))}</text>',
        f'<text x="{left - 6}" y="{height}" font-size="11" text-anchor="end">0</text>',
        f'<line x1="{left}" y1="{top}" x2="{width}" y2="{top}" stroke="#e5e7eb" stroke-dasharray="3 3"/>',
        f'<line x1="{left}" y1="{height}" x2="{width}" y2="{height}" stroke="#cbd5e1"/>',
        f'<polyline data-line="cost" fill="none" stroke="{MEANING["failed"]}" stroke-width="2" '
        f'points="{points([c for _, c, _ in series])}"/>',
        f'<polyline data-line="revenue" fill="none" stroke="{MEANING["succeeded"]}" stroke-width="2" '
        f'points="{points([r for _, _, r in series])}"/>',
    ]
    for i, (day, cost, revenue) in enumerate(series):
        x = left + i * step
        tip = f"{day}: revenue {_number(revenue)}, cost {_number(cost)}"
        parts.append(f'<circle cx="{x:.1f}" cy="{y(revenue):.1f}" r="3" fill="{MEANING["succeeded"]}">'
                     f"<title>{escape(tip)}</title></circle>")
        if i % every == 0 or i == len(series) - 1:  # the ends anchored inside the chart (never clipped)
            anchor = "start" if i == 0 else "end" if i == len(series) - 1 else "middle"
            if anchor == "end" and i % every and i - (i // every) * every < every / 2:
                continue  # too close to the label before it
            parts.append(f'<text x="{x:.1f}" y="{height + 15}" font-size="10" text-anchor="{anchor}">'
                         f"{escape(day)}</text>")
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every label and value above is escaped
