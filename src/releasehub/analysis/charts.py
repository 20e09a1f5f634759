"""Charts of one or more profiles, PNG or SVG (by the file's suffix), drawn with matplotlib.

Two panels: weight memory by precision (bars, in GB, with the memory of common accelerators as
reference lines), and accelerators needed against context length (steps, one line per model,
for one accelerator). Both read only the profile dicts, so a chart of the server's
`/access-profile` JSON is the same as one drawn from a local analysis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .hardware import find_accelerator
from .units import GB

PRECISIONS = ("fp32", "bf16", "fp8", "int4")
REFERENCE_LINES = ("rtx-4090", "h100-80gb", "h200-141gb")


def _label(profile: Mapping[str, Any]) -> str:
    return str(profile.get("name") or profile.get("target") or "model")


def write_chart(profiles: Sequence[Mapping[str, Any]], path: str | Path, gpu: str = "h100-80gb") -> Path:
    """Draw the two panels for `profiles` into `path` (.png or .svg); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
                     label=f"one {device.name.replace('NVIDIA ', '')}: {device.memory_bytes / GB:.0f} GB")
    left.set_xticks(range(len(PRECISIONS)), [p.upper() for p in PRECISIONS])
    left.set_yscale("log")
    left.set_ylabel("weight memory (GB, 10^9 bytes, log scale)")
    left.set_title("Weight memory by precision")
    left.legend(fontsize=7, loc="upper right")

    for profile in sized:
        points = profile["resourcing"].get("gpus_by_context") or []
        xs = [pt["context"] for pt in points if accel.id in pt["gpus"]]
        ys = [pt["gpus"][accel.id] for pt in points if accel.id in pt["gpus"]]
        if xs:
            precision = (profile["resourcing"].get("assumptions") or {}).get("precision", "published")
            right.step(xs, ys, where="post", marker="o", markersize=3, label=f"{_label(profile)} ({precision})")
    overhead = (sized[0]["resourcing"].get("assumptions") or {}).get("overhead_fraction", 0.2)
    right.set_xscale("log", base=2)
    right.set_xlabel("context length (tokens per sequence)")
    right.set_ylabel(f"{accel.name} needed (by memory)")
    right.set_title("Accelerators against context length")
    right.annotate(f"weights + KV cache (batch 1) + {overhead:.0%} overhead", (0.01, 0.01), xycoords="axes fraction",
                   fontsize=7, color="dimgrey")
    right.grid(True, which="major", linewidth=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
