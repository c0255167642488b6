"""Loss-curve images drawn with Pillow (no plotting library needed): one panel per stage, each
term on a log10 axis, with a legend."""

from __future__ import annotations

import math
from pathlib import Path

PANEL = (420, 260)
MARGIN = (52, 24, 12, 34)  # left, top, right, bottom
COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34))  # fmt: skip


def _panel(draw, origin, name: str, records: list[dict]) -> None:
    left, top = origin
    width, height = PANEL
    x0, y0 = left + MARGIN[0], top + MARGIN[1]
    x1, y1 = left + width - MARGIN[2], top + height - MARGIN[3]
    draw.rectangle([x0, y0, x1, y1], outline=(0, 0, 0))
    draw.text((x0, top + 6), f"{name} ({len(records)} steps)", fill=(0, 0, 0))
    keys = [k for k in records[0] if any(r.get(k, 0) > 0 for r in records)] if records else []
    values = [math.log10(r[k]) for r in records for k in keys if r.get(k, 0) > 0]
    if not values:
        draw.text((x0 + 8, y0 + 8), "no positive values", fill=(0, 0, 0))
        return
    low, high = min(values), max(values)
    if high - low < 1e-6:
        low, high = low - 0.5, high + 0.5
    for tick in range(math.floor(low), math.ceil(high) + 1):
        if low <= tick <= high:
            y = y1 - (tick - low) / (high - low) * (y1 - y0)
            draw.line([x0, y, x1, y], fill=(225, 225, 225))
            draw.text((left + 4, y - 5), f"1e{tick}", fill=(0, 0, 0))
    steps = max(len(records) - 1, 1)
    draw.text((x0, y1 + 4), "0", fill=(0, 0, 0))
    draw.text((x1 - 24, y1 + 4), str(len(records)), fill=(0, 0, 0))
    for k, key in enumerate(keys):
        colour = COLOURS[k % len(COLOURS)]
        points = [
            (x0 + i / steps * (x1 - x0), y1 - (math.log10(r[key]) - low) / (high - low) * (y1 - y0))
            for i, r in enumerate(records)
            if r.get(key, 0) > 0
        ]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2 if key == "loss" else 1)
        draw.text((x1 - 110, y0 + 4 + 11 * k), key, fill=colour)


def plot_histories(histories: dict[str, list[dict]], path: str | Path, title: str = "") -> None:
    """Writes a PNG with one panel per stage of `histories` ({stage: [{term: value}, ...]})."""
    from PIL import Image, ImageDraw

    from innout.media import write_png

    names = [name for name, records in histories.items() if records] or ["(no steps)"]
    image = Image.new("RGB", (PANEL[0] * len(names), PANEL[1] + 20), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 4), title, fill=(0, 0, 0))
    for i, name in enumerate(names):
        _panel(draw, (i * PANEL[0], 20), name, histories.get(name, []))
    import numpy as np

    write_png(path, np.asarray(image))
