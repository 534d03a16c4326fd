"""Bar charts drawn on the server as SVG: no chart library to ship, nothing for the browser to
run, and a screen reader gets the chart's label and each bar's title (the page also offers the
same figures as a table). Presentation attributes only (no ``style``), so the console's Content
Security Policy holds."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from markupsafe import Markup, escape

__all__ = ["bar_chart"]


def _nice_max(value: Decimal) -> Decimal:
    if value <= 0:
        return Decimal(1)
    exp = len(str(int(value))) - 1
    base = Decimal(10) ** exp
    for m in (1, 2, 2.5, 5, 10):
        top = base * Decimal(str(m))
        if top >= value:
            return top
    return base * 10


def bar_chart(values: Sequence[Decimal], labels: Sequence[str], titles: Sequence[str], *, label: str,
              axis: tuple[str, str], width: int = 420, height: int = 190) -> Markup:
    """Bars for ``values`` (one per label), ``titles`` as each bar's tooltip, ``axis`` the texts of
    zero and of the top of the scale."""
    # room on the left for the longer axis text (about 7 units a character at font size 12)
    pad_l, pad_b, pad_t = max(36, 7 * max(len(axis[0]), len(axis[1])) + 10), 22, 10
    n = max(1, len(values))
    top = _nice_max(max(values, default=Decimal(0)))
    inner_w, inner_h = width - pad_l - 4, height - pad_b - pad_t
    slot = inner_w / n
    bar_w = max(1.0, slot * 0.7)
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
             f'aria-label="{escape(label)}" preserveAspectRatio="xMinYMin meet" focusable="false">',
             f'<line x1="{pad_l}" y1="{pad_t + inner_h}" x2="{width - 4}" y2="{pad_t + inner_h}" '
             'stroke="#555" stroke-width="1"/>',
             f'<line x1="{pad_l}" y1="{pad_t}" x2="{width - 4}" y2="{pad_t}" stroke="#ccc" stroke-width="1" '
             'stroke-dasharray="3 3"/>',
             f'<text x="{pad_l - 6}" y="{pad_t + inner_h}" text-anchor="end" font-size="12" fill="#333">'
             f'{escape(axis[0])}</text>',
             f'<text x="{pad_l - 6}" y="{pad_t + 4}" text-anchor="end" font-size="12" fill="#333">'
             f'{escape(axis[1])}</text>']
    every = max(1, round(n / 8))
    for i, (v, lab, title) in enumerate(zip(values, labels, titles)):
        h = float(v / top) * inner_h if top else 0.0
        x = pad_l + i * slot + (slot - bar_w) / 2
        y = pad_t + inner_h - h
        parts.append(f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                     f'<title>{escape(title)}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - 6}" text-anchor="middle" font-size="12" '
                         f'fill="#333">{escape(lab)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def scale_top(values: Sequence[Decimal]) -> Decimal:
    return _nice_max(max(values, default=Decimal(0)))
