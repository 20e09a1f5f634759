"""Charts of one or more profiles, PNG or SVG (by the file's suffix), drawn with matplotlib.

Two panels: weight memory by precision (bars, in GB, with the memory of common accelerators as
reference lines), and accelerators needed against context length (steps, one line per model,
for one accelerator, from zero, in whole devices). Both read only the profile dicts, so a chart of
the server's `/access-profile` JSON is the same as one drawn from a local analysis. Memory is in
decimal GB only (accelerators are labelled without their marketing size, which is not in GB), and
a model that cannot be drawn (closed weights) is named in a note under the panels. `svg` draws the
same panels for the web pages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .hardware import find_accelerator
from .svg import PRECISIONS, REFERENCE_GPUS, label_of, reference_label, short_name
from .units import GB

REFERENCE_LINES = REFERENCE_GPUS
_label = label_of


def not_drawn(profiles: Sequence[Mapping[str, Any]]) -> list[str]:
    """The models the memory panel cannot draw, with why."""
    return [f"{_label(p)} ({'closed weights' if p.get('weights') == 'closed' else 'no size known'})"
            for p in profiles if not (p.get("resourcing") or {}).get("weights_bytes")]


def write_chart(profiles: Sequence[Mapping[str, Any]], path: str | Path, gpu: str = "h100-80gb") -> Path:
    """Draw the two panels for `profiles` into `path` (.png or .svg); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg"):
        raise ValueError(f"chart file {path.name!r}: use a .png or .svg name")
    sized = [p for p in profiles if (p.get("resourcing") or {}).get("weights_bytes")]
    if not sized:
        raise ValueError("nothing to chart: none of these models has weights to size (closed models have none)")
    accel = find_accelerator(gpu)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), dpi=110)

    width = 0.8 / len(sized)
    for i, profile in enumerate(sized):
        weights = profile["resourcing"]["weights_bytes"]
        xs = [j + i * width - 0.4 + width / 2 for j in range(len(PRECISIONS))]
        left.bar(xs, [weights[name] / GB for name in PRECISIONS], width=width, label=_label(profile))
    styles = (":", "--", "-.")
    for ref, style in zip(REFERENCE_LINES, styles):
        device = find_accelerator(ref)
        left.axhline(device.memory_bytes / GB, linestyle=style, linewidth=0.9, color="dimgrey",
                     label=reference_label(device))
    left.set_xticks(range(len(PRECISIONS)), [p.upper() for p in PRECISIONS])
    left.set_yscale("log")
    left.set_ylabel("weight memory (GB, 10^9 bytes, log scale)")
    left.set_title("Weight memory by precision")
    left.legend(fontsize=7, loc="upper right")

    tallest, unsized = 1, []
    for profile in sized:
        points = profile["resourcing"].get("gpus_by_context") or []
        xs = [pt["context"] for pt in points if accel.id in pt["gpus"]]
        ys = [pt["gpus"][accel.id] for pt in points if accel.id in pt["gpus"]]
        if xs:
            precision = (profile["resourcing"].get("assumptions") or {}).get("precision", "published")
            right.step(xs, ys, where="post", marker="o", markersize=3, label=f"{_label(profile)} ({precision})")
            tallest = max(tallest, *ys)
        else:
            unsized.append(f"{_label(profile)} (no architecture to size the KV cache)")
    overhead = (sized[0]["resourcing"].get("assumptions") or {}).get("overhead_fraction", 0.2)
    right.set_xscale("log", base=2)
    right.set_xlabel("context length (tokens per sequence)")
    right.set_ylabel(f"{short_name(accel)} needed (by memory)")
    # Devices come whole: the axis starts at zero and shows integer counts only.
    right.yaxis.set_major_locator(MaxNLocator(integer=True))
    right.set_ylim(0, tallest + 1)
    right.set_title("Accelerators against context length")
    right.annotate(f"weights + KV cache (batch 1) + {overhead:.0%} overhead", (0.01, 0.98), xycoords="axes fraction",
                   fontsize=7, color="dimgrey", va="top")
    right.grid(True, which="major", linewidth=0.3)
    right.legend(fontsize=8)
    skipped = not_drawn(profiles) + unsized
    if skipped:
        fig.text(0.01, 0.01, "Not drawn: " + "; ".join(skipped), fontsize=8, color="dimgrey")
    fig.tight_layout(rect=(0, 0.04 if skipped else 0, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
