"""The quality benchmark's report: averages, the paper's claims, Markdown and HTML tables.

Every metric is averaged over a video's frames first, then over the videos: the table shows the
mean over videos +- their standard deviation (the spread between videos, not between frames).
"""

from __future__ import annotations

import html
import math
import statistics
from pathlib import Path

from innout.provenance import short_commit

#: (key in the per-frame record, column title, digits) of the table's metrics, in order.
METRICS = (
    ("reconstruction_psnr", "reconstruction PSNR", 2),
    ("reconstruction_psnr_face", "on face", 2),
    ("reconstruction_psnr_object", "on object", 2),
    ("object_iou", "object IoU", 2),
    ("reconstruction_ssim", "reconstruction SSIM", 3),
    ("reconstruction_lpips", "reconstruction LPIPS", 3),
    ("edit_psnr", "edit fidelity PSNR", 2),
    ("removal_psnr_in_object", "removal PSNR in object", 2),
    ("removal_psnr_outside_object", "removal PSNR outside", 2),
    ("novel_view_psnr", "novel view PSNR", 2),
    ("seconds_per_frame", "s / frame", 1),
)
#: The paper's claims, and innout's own targets for the `fast` preset, as the benchmark checks
#: them (docs/synthetic-world.md): (method, metric, baseline method, margin): the method's mean
#: must be at least the baseline's + margin (a margin of 0 means strictly above).
RECONSTRUCTION_MARGIN_DB = 3.0
MARGINS = (
    ("innout", "reconstruction_psnr", "wplus", RECONSTRUCTION_MARGIN_DB),
    ("innout", "reconstruction_psnr_object", "wplus", 6.0),
    ("innout-auto", "reconstruction_psnr_object", "wplus", 3.0),
    ("innout", "novel_view_psnr", "wplus", 1.0),
    ("innout", "edit_psnr", "pti", 0.0),
)
#: Removal must restore the face under the object to at least this PSNR.
REMOVAL_FLOOR_DB = 20.0
#: innout's cost per frame at most this multiple of W+'s in the same run.
COST_RATIO = 2.5


def _mean(values: list) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return sum(finite) / len(finite) if finite else None


def video_means(pair: dict) -> dict[str, float | None]:
    """A pair's per-frame metrics averaged over its frames (None where not measured)."""
    means = {}
    for key, _, _ in METRICS:
        if key == "seconds_per_frame":
            means[key] = pair["seconds_per_frame"]
        else:
            values = pair["per_frame"].get(key)
            means[key] = _mean(values) if values is not None else None
    return means


def summarize(pairs: list[dict], methods) -> dict:
    """{method: {metric: {"mean", "std", "videos"}}} over videos, and the claims' verdicts."""
    table: dict[str, dict] = {}
    for method in methods:
        rows = [video_means(p) for p in pairs if p["method"] == method]
        table[method] = {}
        for key, _, _ in METRICS:
            values = [r[key] for r in rows if r[key] is not None]
            if not values:
                continue
            table[method][key] = {
                "mean": round(statistics.fmean(values), 4),
                "std": round(statistics.pstdev(values), 4) if len(values) > 1 else 0.0,
                "videos": len(values),
            }
    return {"methods": table, "claims": claims(table)}


def _value(table: dict, method: str, key: str) -> float | None:
    return table.get(method, {}).get(key, {}).get("mean")


def claims(table: dict) -> list[dict]:
    """The claims that the suite's methods allow checking, each with its numbers."""
    titles = {key: title for key, title, _ in METRICS}
    checks = []
    for method, key, baseline, margin in MARGINS:
        ours, theirs = _value(table, method, key), _value(table, baseline, key)
        if ours is None or theirs is None:
            continue
        relation = f">= {baseline} + {margin:g} dB" if margin else f"> {baseline}"
        checks.append({
            "claim": f"{method} {titles[key]} {relation}",
            "values": {method: ours, baseline: theirs, "difference": round(ours - theirs, 3)},
            "holds": ours >= theirs + margin if margin else ours > theirs,
        })  # fmt: skip
    for method in ("innout", "innout-auto"):
        removal = _value(table, method, "removal_psnr_in_object")
        if removal is not None:
            checks.append({
                "claim": f"{method} removal PSNR inside the object >= {REMOVAL_FLOOR_DB:g} dB",
                "values": {method: removal},
                "holds": removal >= REMOVAL_FLOOR_DB,
            })  # fmt: skip
    ours, theirs = (_value(table, m, "seconds_per_frame") for m in ("innout", "wplus"))
    if ours is not None and theirs:
        checks.append({
            "claim": f"innout s / frame <= {COST_RATIO:g} x wplus",
            "values": {"innout": ours, "wplus": theirs, "ratio": round(ours / theirs, 3)},
            "holds": ours <= COST_RATIO * theirs,
        })  # fmt: skip
    return checks


def _cell(entry: dict | None, digits: int) -> str:
    if entry is None:
        return "-"
    if entry["videos"] > 1:
        return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"
    return f"{entry['mean']:.{digits}f}"


def _columns(report: dict) -> list[tuple[str, str, int]]:
    table = report["summary"]["methods"]
    return [m for m in METRICS if any(m[0] in row for row in table.values())]


def _describe(report: dict) -> str:
    suite, env = report["suite"], report["environment"]
    videos = len({p["video"] for p in report["pairs"]})
    return (
        f"{videos} synthetic video(s) x {suite['frames']} frames ({', '.join(suite['objects'])}), "
        f"network {suite['network']}, preset {suite['preset']}, edit {suite['edit']} "
        f"{suite['edit_delta']:+g}; {env['machine']}, {env['threads']} threads, torch "
        f"{env['torch']}, innout {env['innout']} (commit {short_commit(env['commit'])})"
    )


def format_markdown(report: dict) -> str:
    """The summary table (mean ± spread over videos) and the claims, as Markdown."""
    columns = _columns(report)
    lines = [f"Occlusion benchmark: {_describe(report)}.", ""]
    lines.append("| method | " + " | ".join(title for _, title, _ in columns) + " |")
    lines.append("|---|" + "---|" * len(columns))
    for method, row in report["summary"]["methods"].items():
        cells = [_cell(row.get(key), digits) for key, _, digits in columns]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    if report["summary"]["claims"]:
        lines.append("")
        for check in report["summary"]["claims"]:
            values = ", ".join(f"{k} {v:.2f}" for k, v in check["values"].items())
            verdict = "holds" if check["holds"] else "does NOT hold"
            lines.append(f"- {check['claim']}: {verdict} ({values})")
    return "\n".join(lines) + "\n"


def write_html(report: dict, path: str | Path) -> None:
    """A self-contained page: the table, the claims, per-video numbers and the side-by-side
    videos (linked relative to the benchmark's folder)."""
    path = Path(path)
    columns = _columns(report)
    head = "".join(f"<th>{html.escape(title)}</th>" for _, title, _ in columns)
    rows = "".join(
        f"<tr><td>{html.escape(method)}</td>"
        + "".join(f"<td>{_cell(row.get(key), d)}</td>" for key, _, d in columns)
        + "</tr>"
        for method, row in report["summary"]["methods"].items()
    )
    checks = "".join(
        f"<li>{html.escape(c['claim'])}: <b>{'holds' if c['holds'] else 'does not hold'}</b> "
        f"({html.escape(', '.join(f'{k} {v:.2f}' for k, v in c['values'].items()))})</li>"
        for c in report["summary"]["claims"]
    )
    per_video = "".join(
        f"<tr><td>{html.escape(p['video'])}</td><td>{html.escape(p['method'])}</td>"
        + "".join(
            "<td>-</td>" if means[key] is None else f"<td>{means[key]:.{d}f}</td>"
            for key, _, d in columns
        )
        + "</tr>"
        for p in report["pairs"]
        for means in [video_means(p)]
    )
    out_dir = Path(report.get("out", path.parent)).resolve()
    videos = "".join(
        f"<figure><video src='{html.escape(_relative(out_dir / p['side_by_side'], path))}' "
        f"controls loop muted></video><figcaption>{html.escape(p['video'])} - "
        f"{html.escape(p['method'])}: {html.escape(' | '.join(p['panels']))}</figcaption></figure>"
        for p in report["pairs"]
        if p.get("side_by_side")
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>innout occlusion benchmark</title>
<style>body{{font-family:sans-serif;max-width:1400px;margin:2em auto}}
table{{border-collapse:collapse}}td,th{{padding:3px 10px;border-bottom:1px solid #ddd}}
video{{image-rendering:pixelated;width:100%}}figure{{margin:1em 0}}</style></head><body>
<h1>innout occlusion benchmark</h1>
<p>{html.escape(_describe(report))}. Each metric is averaged over a video's frames, then over
the videos: mean ± standard deviation across videos. PSNR in dB against the synthetic world's
ground truth on the super-resolved output.</p>
<table><tr><th>method</th>{head}</tr>{rows}</table>
<h2>The paper's claims</h2><ul>{checks or "<li>(the suite's methods check none)</li>"}</ul>
<h2>Per video</h2>
<table><tr><th>video</th><th>method</th>{head}</tr>{per_video}</table>
<h2>Side by side</h2>{videos}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")


def _relative(target: Path, page: Path) -> str:
    import os

    return os.path.relpath(target, page.resolve().parent)
