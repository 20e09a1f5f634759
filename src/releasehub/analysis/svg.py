"""Charts of profiles as inline SVG for the web pages: pure functions of the profile dicts, no I/O.

The same two panels as `charts` (the CLI's matplotlib charts), drawn without matplotlib so that a
page can embed them: weight memory by precision (grouped bars, decimal GB on a log axis, with the
memory of a few accelerators as reference lines) and accelerators needed against context length
(steps, y from zero, integer ticks).

The pages' Content-Security-Policy allows no inline style and no script, so every colour, size and
stroke is a presentation attribute, and nothing refers outside the document. Every text is escaped
here (model names are user content). Each chart carries the same numbers as table rows, for people
who cannot see it, and names the models it could not draw.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from .hardware import Accelerator, find_accelerator
from .units import GB

PRECISIONS = ("fp32", "bf16", "fp8", "int4")
REFERENCE_GPUS = ("rtx-4090", "h100-80gb", "h200-141gb")
# Okabe-Ito: told apart with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000")
INK, MUTED, GRID = "#1b1b1b", "#5a6570", "#d5dae0"
WIDTH, HEIGHT = 760, 380
LEFT, RIGHT_EDGE, TOP, BOTTOM = 78, 540, 44, 320  # the plot area; the legend sits right of it
LEGEND_X = 556
FONT = "system-ui, -apple-system, Segoe UI, sans-serif"
_ID = re.compile(r"[^a-z0-9-]")


@dataclass(frozen=True)
class Chart:
    """One chart: the SVG element (safe to embed), its numbers as a table, and what it left out."""

    id: str
    title: str
    svg: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    not_drawn: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def label_of(profile: Mapping[str, Any]) -> str:
    return str(profile.get("name") or profile.get("target") or "model")


def short_name(accelerator: Accelerator) -> str:
    """'H100 (SXM)' for 'NVIDIA H100 80GB (SXM)': the marketing size is not in GB, so it is left out
    and the memory is given in decimal GB beside it."""
    name = accelerator.name.replace("NVIDIA ", "").replace("GeForce ", "")
    name = re.sub(r"\s*\b\d+\s?GB\b", "", name)
    return " ".join(name.split())


def reference_label(accelerator: Accelerator) -> str:
    return f"one {short_name(accelerator)}: {accelerator.memory_bytes / GB:,.1f} GB"


def gb_text(value: float) -> str:
    """A decimal-GB figure with enough digits to tell small models apart."""
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 1:
        return f"{value:,.1f}"
    if value <= 0:
        return "0"
    digits = 2 - math.floor(math.log10(value))
    return f"{value:.{digits}f}"


def tokens_text(value: int) -> str:
    for size, suffix in ((1 << 20, "M"), (1 << 10, "K")):
        if value >= size and value % size == 0:
            return f"{value // size}{suffix}"
    return f"{value:,}"


def _closed(profile: Mapping[str, Any]) -> bool:
    return profile.get("weights") == "closed"


# ---------------------------------------------------------------------------------------------
# SVG writing: every attribute value and text goes through escape/quoteattr


def _attrs(attributes: Mapping[str, Any]) -> str:
    return "".join(f" {key.rstrip('_').replace('_', '-')}={quoteattr(str(value))}"
                   for key, value in attributes.items() if value is not None)


def _el(tag: str, body: str | None = None, **attributes: Any) -> str:
    if body is None:
        return f"<{tag}{_attrs(attributes)}/>"
    return f"<{tag}{_attrs(attributes)}>{body}</{tag}>"


def _text(x: float, y: float, content: str, **attributes: Any) -> str:
    attributes.setdefault("font_size", 11)
    attributes.setdefault("fill", INK)
    return _el("text", escape(content), x=f"{x:.1f}", y=f"{y:.1f}", **attributes)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:max(limit - 1, 1)] + "…"


def _svg(chart_id: str, title: str, description: str, body: Sequence[str]) -> str:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
            f'height="{HEIGHT}" role="img" aria-labelledby="{chart_id}-title {chart_id}-desc" '
            f'font-family={quoteattr(FONT)}>')
    return "".join([head, _el("title", escape(title), id=f"{chart_id}-title"),
                    _el("desc", escape(description), id=f"{chart_id}-desc"),
                    _el("rect", x=0, y=0, width=WIDTH, height=HEIGHT, fill="#ffffff"),
                    _text(LEFT, 22, title, font_size=14, font_weight="bold"), *body, "</svg>"])


def _legend(entries: Sequence[tuple[str, str]], dashed: Sequence[tuple[str, str]] = ()) -> list[str]:
    out, y = [], TOP + 6
    for colour, label in entries:
        out.append(_el("rect", x=LEGEND_X, y=f"{y - 9:.1f}", width=12, height=12, fill=colour))
        out.append(_text(LEGEND_X + 18, y + 1, _shorten(label, 30)))
        y += 18
    for dash, label in dashed:
        out.append(_el("line", x1=LEGEND_X, y1=f"{y - 3:.1f}", x2=LEGEND_X + 12, y2=f"{y - 3:.1f}", stroke=MUTED,
                       stroke_width=1.5, stroke_dasharray=dash))
        out.append(_text(LEGEND_X + 18, y + 1, _shorten(label, 30), fill=MUTED))
        y += 18
    return out


def _y_title(text: str) -> str:
    x, y = 18, (TOP + BOTTOM) / 2
    return _text(x, y, text, text_anchor="middle", transform=f"rotate(-90 {x} {y:.1f})", fill=MUTED)


def _frame() -> str:
    return _el("path", d=f"M{LEFT} {TOP} V{BOTTOM} H{RIGHT_EDGE}", fill="none", stroke=INK, stroke_width=1)


# ---------------------------------------------------------------------------------------------
# Weight memory by precision


def memory_chart(profiles: Sequence[Mapping[str, Any]], chart_id: str = "memory-chart",
                 references: Sequence[str] = REFERENCE_GPUS) -> Chart:
    """Grouped bars (one group per model, one bar per precision) in decimal GB on a log axis."""
    chart_id = _ID.sub("-", chart_id.lower())
    title = "Weight memory by precision"
    sized, not_drawn = [], []
    for profile in profiles:
        weights = (profile.get("resourcing") or {}).get("weights_bytes") or {}
        if all(weights.get(p) for p in PRECISIONS):
            sized.append((label_of(profile), [weights[p] / GB for p in PRECISIONS]))
        else:
            why = "closed weights" if _closed(profile) else "no size known"
            not_drawn.append(f"{label_of(profile)} ({why})")
    devices = [find_accelerator(ref) for ref in references]
    columns = ("model", *(f"{p.upper()} (GB)" for p in PRECISIONS))
    rows = tuple((name, *(gb_text(v) for v in values)) for name, values in sized)
    notes = ("GB are decimal gigabytes (10^9 bytes) throughout, accelerator memory included.",
             "Reference lines: " + "; ".join(reference_label(d) for d in devices) + ".")
    body = [_frame(), _y_title("weight memory (GB, 10^9 bytes, log scale)")]
    if sized:
        body += _memory_body(sized, devices)
    else:
        body.append(_text((LEFT + RIGHT_EDGE) / 2, (TOP + BOTTOM) / 2, "No model here has weights to size.",
                          text_anchor="middle", fill=MUTED))
    description = ("Bars of the weight memory of each model at " + ", ".join(p.upper() for p in PRECISIONS)
                   + ", in decimal GB on a log scale; the same figures are in the table below.")
    svg = _svg(chart_id, title, description, body)
    return Chart(chart_id, title, svg, columns, rows, tuple(not_drawn), notes)


def _memory_body(sized: Sequence[tuple[str, list[float]]], devices: Sequence[Accelerator]) -> list[str]:
    values = [v for _, vs in sized for v in vs] + [d.memory_bytes / GB for d in devices]
    low, high = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    high = max(high, low + 1)

    def y_of(value: float) -> float:
        return BOTTOM - (math.log10(value) - low) / (high - low) * (BOTTOM - TOP)

    out: list[str] = []
    for power in range(low, high + 1):
        y = y_of(10.0**power)
        out.append(_el("line", x1=LEFT, y1=f"{y:.1f}", x2=RIGHT_EDGE, y2=f"{y:.1f}", stroke=GRID, stroke_width=1))
        label = f"{10**power:,}" if power >= 0 else f"{10.0**power:.{-power}f}"
        out.append(_text(LEFT - 6, y + 4, label, text_anchor="end"))
    group = (RIGHT_EDGE - LEFT) / len(sized)
    bar = group * 0.8 / len(PRECISIONS)
    for index, (name, figures) in enumerate(sized):
        start = LEFT + index * group + group * 0.1
        for k, (precision, value) in enumerate(zip(PRECISIONS, figures)):
            y = y_of(value)
            tip = _el("title", escape(f"{name}, {precision.upper()}: {gb_text(value)} GB"))
            out.append(_el("rect", tip, x=f"{start + k * bar:.1f}", y=f"{y:.1f}", width=f"{bar * 0.92:.1f}",
                           height=f"{BOTTOM - y:.1f}", fill=PALETTE[k]))
        out.append(_text(start + group * 0.4, BOTTOM + 16, _shorten(name, max(int(group / 6.5), 4)),
                         text_anchor="middle"))
    dashes = ("2 3", "6 3", "8 3 2 3")
    for device, dash in zip(devices, dashes):
        y = y_of(device.memory_bytes / GB)
        out.append(_el("line", x1=LEFT, y1=f"{y:.1f}", x2=RIGHT_EDGE, y2=f"{y:.1f}", stroke=MUTED, stroke_width=1.5,
                       stroke_dasharray=dash))
    out.append(_text((LEFT + RIGHT_EDGE) / 2, BOTTOM + 34, "model", text_anchor="middle", fill=MUTED))
    out += _legend([(PALETTE[k], p.upper()) for k, p in enumerate(PRECISIONS)],
                   [(dash, reference_label(d)) for d, dash in zip(devices, dashes)])
    return out


# ---------------------------------------------------------------------------------------------
# Accelerators against context length


def integer_ticks(top_value: int, most: int = 8) -> list[int]:
    """0, step, 2*step, ... just past `top_value`: whole accelerators only, never a fraction."""
    step = 1
    while top_value // step + 1 > most:
        step = _next_step(step)
    top = (top_value // step + 1) * step
    return list(range(0, top + 1, step))


def _next_step(step: int) -> int:
    """1, 2, 5, 10, 20, 50, ..."""
    magnitude = 10 ** (len(str(step)) - 1)
    lead = step // magnitude
    return magnitude * {1: 2, 2: 5}.get(lead, 10)


def _context_series(profiles: Sequence[Mapping[str, Any]], gpu: str) -> tuple[list[tuple[str, list[tuple[int, int]]]],
                                                                               list[str]]:
    series, not_drawn = [], []
    for profile in profiles:
        points = (profile.get("resourcing") or {}).get("gpus_by_context") or []
        steps = [(int(pt["context"]), int(pt["gpus"][gpu])) for pt in points
                 if gpu in (pt.get("gpus") or {}) and pt["gpus"][gpu] is not None]
        if steps:
            series.append((label_of(profile), sorted(steps)))
        elif _closed(profile):
            not_drawn.append(f"{label_of(profile)} (closed weights)")
        else:
            not_drawn.append(f"{label_of(profile)} (no architecture to size the KV cache)")
    return series, not_drawn


def context_chart(profiles: Sequence[Mapping[str, Any]], gpu: str = "h100-80gb",
                  chart_id: str = "context-chart") -> Chart:
    """Steps of the accelerators needed (by memory) against context length, one line per model."""
    chart_id = _ID.sub("-", chart_id.lower())
    device = find_accelerator(gpu)
    title = f"{short_name(device)} needed against context length"
    series, not_drawn = _context_series(profiles, device.id)
    contexts = sorted({c for _, steps in series for c, _ in steps})
    columns = ("context (tokens)", *(name for name, _ in series))
    rows = tuple((f"{c:,}", *(str(dict(steps).get(c, "—")) for _, steps in series)) for c in contexts)
    body = [_frame(), _y_title(f"{short_name(device)} needed (by memory)")]
    if series:
        body += _context_body(series, contexts)
    else:
        body.append(_text((LEFT + RIGHT_EDGE) / 2, (TOP + BOTTOM) / 2, "No model here can be sized by context.",
                          text_anchor="middle", fill=MUTED))
    notes = (f"Whole {short_name(device)} devices ({device.memory_bytes / GB:,.1f} GB each) holding the weights, "
             "the KV cache of one sequence and the serving overhead.",)
    description = (f"Steps of how many {short_name(device)} each model needs as its context grows; the axis "
                   "starts at zero; the same figures are in the table below.")
    svg = _svg(chart_id, title, description, body)
    return Chart(chart_id, title, svg, columns, rows, tuple(not_drawn), notes)


def _context_body(series: Sequence[tuple[str, list[tuple[int, int]]]], contexts: Sequence[int]) -> list[str]:
    low, high = math.log2(contexts[0]), math.log2(contexts[-1])
    if high - low < 1:
        low, high = low - 1, high + 1
    ticks = integer_ticks(max(n for _, steps in series for _, n in steps))

    def x_of(context: float) -> float:
        return LEFT + 10 + (math.log2(context) - low) / (high - low) * (RIGHT_EDGE - LEFT - 20)

    def y_of(count: float) -> float:
        return BOTTOM - count / ticks[-1] * (BOTTOM - TOP)

    out: list[str] = []
    for tick in ticks:
        y = y_of(tick)
        out.append(_el("line", x1=LEFT, y1=f"{y:.1f}", x2=RIGHT_EDGE, y2=f"{y:.1f}", stroke=GRID, stroke_width=1))
        out.append(_text(LEFT - 6, y + 4, str(tick), text_anchor="end"))
    powers = [1 << k for k in range(math.ceil(low), math.floor(high) + 1)]
    stride = max(1, math.ceil(len(powers) / 8))
    for value in powers[::stride]:
        x = x_of(value)
        out.append(_el("line", x1=f"{x:.1f}", y1=BOTTOM, x2=f"{x:.1f}", y2=BOTTOM + 4, stroke=INK, stroke_width=1))
        out.append(_text(x, BOTTOM + 16, tokens_text(value), text_anchor="middle"))
    out.append(_text((LEFT + RIGHT_EDGE) / 2, BOTTOM + 34, "context length (tokens per sequence, log scale)",
                     text_anchor="middle", fill=MUTED))
    for index, (name, steps) in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        path = f"M{x_of(steps[0][0]):.1f} {y_of(steps[0][1]):.1f}"
        for context, following in steps[1:]:
            path += f" H{x_of(context):.1f} V{y_of(following):.1f}"
        out.append(_el("path", d=path, fill="none", stroke=colour, stroke_width=2))
        for context, count in steps:
            tip = _el("title", escape(f"{name}: {count} at {context:,} tokens"))
            out.append(_el("circle", tip, cx=f"{x_of(context):.1f}", cy=f"{y_of(count):.1f}", r=3, fill=colour))
    out += _legend([(PALETTE[i % len(PALETTE)], name) for i, (name, _) in enumerate(series)])
    return out


__all__ = ["Chart", "context_chart", "gb_text", "integer_ticks", "memory_chart", "reference_label", "short_name"]
