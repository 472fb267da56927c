"""Small SVG charts for asset metadata, in pure Python (no plotting library in the code location).

Dagster's UI renders markdown metadata, and a markdown image whose source is a base64 data URI
shows inline on the asset's materialization. `line_chart` draws series of (x, y) points (the
price series of a feed), `bar_chart` grouped bars (a leaderboard's window scores per model);
`markdown_image` wraps either for `MetadataValue.md`.

Charts are deterministic text: the same data gives the same bytes, so tests assert on them.
Non-finite values are left out (a gap in a line, no bar) rather than drawn at a wrong place.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

# Colour-blind-safe palette (Okabe–Ito), cycled over series.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
FONT = 'font-family="sans-serif" font-size="11"'
# Plot area margins: room for the y labels on the left, the title on top, the x labels below.
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 24, 34

Point = tuple[float, float]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _label(value: float) -> str:
    # Prices read best whole ("22,897"); scores keep four significant digits, which fit the left
    # margin even in exponent form ("-1.064e-05").
    if 1_000 <= abs(value) < 1e9:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _svg(width: int, height: int, title: str, body: list[str]) -> str:
    if width < LEFT + RIGHT + 40 or height < TOP + BOTTOM + 40:
        raise ValueError(f"a chart needs at least {LEFT + RIGHT + 40}×{TOP + BOTTOM + 40} px, got {width}×{height}")
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        f'<rect width="{width}" height="{height}" fill="#ffffff"/>'
        f'<text x="{width / 2:.1f}" y="15" text-anchor="middle" {FONT} font-weight="bold">{escape(title)}</text>'
    )
    return head + "".join(body) + "</svg>"


def _range(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    if low == high:  # a flat series still gets a visible band around it
        pad = abs(low) * 0.01 or 1.0
        return low - pad, high + pad
    return low, high


def _axes(width: int, height: int, y_low: float, y_high: float) -> list[str]:
    bottom, right = height - BOTTOM, width - RIGHT
    return [
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" stroke="#888888"/>',
        f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888888"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end" {FONT}>{_label(y_high)}</text>',
        f'<text x="{LEFT - 4}" y="{bottom}" text-anchor="end" {FONT}>{_label(y_low)}</text>',
    ]


def _legend(names: Sequence[str], width: int, height: int) -> list[str]:
    out, x = [], LEFT
    for i, name in enumerate(names):
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<rect x="{x}" y="{height - 12}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{x + 14}" y="{height - 3}" {FONT}>{escape(name)}</text>')
        x += 24 + 7 * len(name)
        if x > width - 40:
            break
    return out


def downsample(points: Sequence[Point], max_points: int) -> list[Point]:
    """At most `max_points` points, evenly picked, always keeping the first and the last."""
    if max_points < 2:
        raise ValueError(f"max_points must be at least 2, got {max_points}")
    if len(points) <= max_points:
        return list(points)
    step = (len(points) - 1) / (max_points - 1)
    return [points[round(i * step)] for i in range(max_points)]


def line_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    title: str,
    x_labels: tuple[str, str] = ("", ""),
    width: int = 520,
    height: int = 200,
) -> str:
    """One polyline per series over a shared x and y scale; `x_labels` name the x range's ends.

    Each series keeps its points in the given order; points with a non-finite coordinate are
    dropped. With no finite point at all the chart says "no data".
    """
    clean = {name: [(float(x), float(y)) for x, y in pts if _finite(x) and _finite(y)] for name, pts in series.items()}
    clean = {name: pts for name, pts in clean.items() if pts}
    if not clean:
        return _svg(width, height, title, [f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" {FONT}>no data</text>'])
    xs = [x for pts in clean.values() for x, _ in pts]
    ys = [y for pts in clean.values() for _, y in pts]
    x_low, x_high = (min(xs), max(xs)) if min(xs) < max(xs) else (min(xs) - 1, max(xs) + 1)
    y_low, y_high = _range(ys)
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM

    def at(x: float, y: float) -> str:
        px = LEFT + (x - x_low) / (x_high - x_low) * plot_w
        py = TOP + (y_high - y) / (y_high - y_low) * plot_h
        return f"{px:.1f},{py:.1f}"

    body = _axes(width, height, y_low, y_high)
    bottom = height - BOTTOM
    body.append(f'<text x="{LEFT}" y="{bottom + 13}" {FONT}>{escape(x_labels[0])}</text>')
    body.append(f'<text x="{width - RIGHT}" y="{bottom + 13}" text-anchor="end" {FONT}>{escape(x_labels[1])}</text>')
    for i, (name, pts) in enumerate(clean.items()):
        colour = PALETTE[i % len(PALETTE)]
        body.append(
            f'<polyline data-series={quoteattr(name)} fill="none" stroke="{colour}" stroke-width="1.5" '
            f'points="{" ".join(at(x, y) for x, y in pts)}"/>'
        )
    body += _legend(list(clean), width, height)
    return _svg(width, height, title, body)


def bar_chart(
    groups: Mapping[str, Mapping[str, float | None]],
    *,
    title: str,
    width: int = 520,
    height: int = 220,
) -> str:
    """Grouped bars from a zero baseline: one group per key of `groups` (e.g. a model), one bar
    per inner key (e.g. a window), the same inner key in the same colour across groups."""
    names = list(dict.fromkeys(series for bars in groups.values() for series in bars))
    values = [v for bars in groups.values() for v in bars.values() if _finite(v)]
    if not values:
        return _svg(width, height, title, [f'<text x="{width / 2:.1f}" y="{height / 2:.1f}" text-anchor="middle" {FONT}>no data</text>'])
    y_low, y_high = _range([0.0, *values])
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM

    def y_at(y: float) -> float:
        return TOP + (y_high - y) / (y_high - y_low) * plot_h

    body = _axes(width, height, y_low, y_high)
    zero = y_at(0.0)
    body.append(f'<line x1="{LEFT}" y1="{zero:.1f}" x2="{width - RIGHT}" y2="{zero:.1f}" stroke="#bbbbbb" stroke-dasharray="3,3"/>')
    slot = plot_w / len(groups)
    bar_w = max(1.0, slot * 0.8 / max(1, len(names)))
    for g, (group, bars) in enumerate(groups.items()):
        left = LEFT + g * slot + slot * 0.1
        for s, name in enumerate(names):
            value = bars.get(name)
            if not _finite(value):
                continue
            top, bottom = sorted((y_at(value), zero))
            body.append(
                f'<rect data-group={quoteattr(group)} data-series={quoteattr(name)} x="{left + s * bar_w:.1f}" y="{top:.1f}" '
                f'width="{bar_w * 0.9:.1f}" height="{max(bottom - top, 0.5):.1f}" fill="{PALETTE[s % len(PALETTE)]}"/>'
            )
        label = group if len(group) <= 14 else group[:13] + "…"
        body.append(
            f'<text x="{left + slot * 0.4:.1f}" y="{height - BOTTOM + 13}" text-anchor="middle" {FONT}>{escape(label)}</text>'
        )
    body += _legend(names, width, height)
    return _svg(width, height, title, body)


def data_uri(svg: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode("ascii")


def markdown_image(svg: str, alt: str) -> str:
    """A markdown image that shows `svg` inline (Dagster renders markdown metadata)."""
    return f"![{alt.replace(']', ')')}]({data_uri(svg)})"
