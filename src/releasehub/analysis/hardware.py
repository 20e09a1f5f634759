"""The accelerator catalogue: memory, power, price and how many fit in one node.

Memory is what the device exposes to a framework (`nvidia-smi` total, in MiB), not the marketing
figure: an "H100 80GB" has 81,559 MiB (85.5 GB, 79.6 GiB). Unified-memory hosts (Apple silicon)
give the GPU a share of system memory (`usable_fraction`, macOS' default wired limit).

Prices and watts are list or typical figures with the date they were read; they move, so every
cost the profile shows can be recomputed with the user's own (`--gpu-price`, `--kwh-price`,
`--gpu-hour`). Nothing here is measured by releasehub.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
GIB = 1 << 30
GB = 10**9


@dataclass(frozen=True)
class Accelerator:
    id: str
    name: str
    memory_bytes: int
    watts: int                    # board power (TDP) of one device, or the host's typical draw
    price_usd: float              # purchase price of one device (host for CPU/unified-memory entries)
    gpu_hour_usd: float | None    # a typical on-demand rental price per device-hour, when rented
    per_node: int                 # devices in one node (tensor parallelism stays inside a node)
    kind: str                     # "datacenter" | "workstation" | "consumer" | "unified" | "cpu"
    bandwidth_bytes_s: float = 0.0  # memory bandwidth of one device, for the single-stream decode estimate
    usable_fraction: float = 1.0  # share of memory_bytes a model may use
    as_of: str = "2025-01"
    source: str = ""

    @property
    def usable_bytes(self) -> int:
        return int(self.memory_bytes * self.usable_fraction)

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "name": self.name, "memory_bytes": self.memory_bytes,
                "usable_bytes": self.usable_bytes, "watts": self.watts, "price_usd": self.price_usd,
                "gpu_hour_usd": self.gpu_hour_usd, "per_node": self.per_node, "kind": self.kind,
                "bandwidth_bytes_s": self.bandwidth_bytes_s,
                "as_of": self.as_of, "source": self.source}


_NVIDIA_SMI = "nvidia-smi memory total; NVIDIA data sheet TDP"

ACCELERATORS: tuple[Accelerator, ...] = (
    Accelerator("h100-80gb", "NVIDIA H100 80GB (SXM)", 81_559 * MIB, 700, 25_000, 8.25, 8, "datacenter", bandwidth_bytes_s=3.35e12,
                source=f"{_NVIDIA_SMI}; price and $8.25/h from Beyond Release (2025), Appendix A"),
    Accelerator("h200-141gb", "NVIDIA H200 141GB (SXM)", 143_771 * MIB, 700, 32_000, 10.0, 8, "datacenter", bandwidth_bytes_s=4.8e12,
                source=f"{_NVIDIA_SMI}; price from Beyond Release (2025), section 4.1.4"),
    Accelerator("b200-192gb", "NVIDIA B200 (HGX, 180 GB usable)", 183_359 * MIB, 1000, 40_000, 12.0, 8,
                "datacenter", bandwidth_bytes_s=8.0e12, as_of="2025-06", source=f"{_NVIDIA_SMI}; street price"),
    Accelerator("a100-80gb", "NVIDIA A100 80GB (SXM)", 81_920 * MIB, 400, 15_000, 3.0, 8, "datacenter", bandwidth_bytes_s=2.039e12,
                source=f"{_NVIDIA_SMI}; street price"),
    Accelerator("a100-40gb", "NVIDIA A100 40GB (SXM)", 40_960 * MIB, 400, 8_000, 2.0, 8, "datacenter", bandwidth_bytes_s=1.555e12,
                source=f"{_NVIDIA_SMI}; street price"),
    Accelerator("l40s", "NVIDIA L40S 48GB", 46_068 * MIB, 350, 8_000, 1.8, 8, "datacenter", bandwidth_bytes_s=0.864e12,
                source=f"{_NVIDIA_SMI}; street price"),
    Accelerator("l4", "NVIDIA L4 24GB", 23_034 * MIB, 72, 2_500, 0.8, 8, "datacenter", bandwidth_bytes_s=0.3e12,
                source=f"{_NVIDIA_SMI}; street price"),
    Accelerator("rtx-4090", "NVIDIA GeForce RTX 4090 24GB", 24_564 * MIB, 450, 1_800, 0.7, 4, "consumer", bandwidth_bytes_s=1.008e12,
                source=f"{_NVIDIA_SMI}; retail price"),
    Accelerator("mac-studio-m3-ultra-512gb", "Apple Mac Studio M3 Ultra, 512 GB unified memory", 512 * GIB,
                480, 9_499, None, 1, "unified", bandwidth_bytes_s=0.819e12, usable_fraction=0.75, as_of="2025-03",
                source="Apple list price; macOS GPU wired-memory default of about 75%"),
    Accelerator("macbook-pro-m4-max-128gb", "Apple MacBook Pro M4 Max, 128 GB unified memory", 128 * GIB,
                140, 4_699, None, 1, "unified", bandwidth_bytes_s=0.546e12, usable_fraction=0.75, as_of="2025-01",
                source="Apple list price; macOS GPU wired-memory default of about 75%"),
    Accelerator("laptop-32gb", "Laptop, 32 GB RAM (CPU inference)", 32 * GIB, 60, 1_500, None, 1, "cpu", bandwidth_bytes_s=0.09e12,
                usable_fraction=0.75, source="typical; a quarter of memory left to the system"),
    Accelerator("cpu-server-768gb", "2-socket CPU server, 768 GB DDR5 (CPU inference)", 768 * GIB, 800, 20_000,
                None, 1, "cpu", bandwidth_bytes_s=0.7e12, usable_fraction=0.9, source="typical configuration; CPU inference is slow"),
)

_BY_ID = {a.id: a for a in ACCELERATORS}
DEFAULT_GPUS = ("h100-80gb", "h200-141gb", "b200-192gb", "a100-80gb", "a100-40gb", "l40s", "l4", "rtx-4090",
                "mac-studio-m3-ultra-512gb", "laptop-32gb")


def _key(text: str) -> str:
    return "".join(ch for ch in text.lower() if ch.isalnum())


def find_accelerator(name: str) -> Accelerator:
    """By id or a loose spelling ("H100", "h100-80gb", "RTX 4090"); ValueError lists the choices."""
    key = _key(name)
    if name in _BY_ID:
        return _BY_ID[name]
    matches = [a for a in ACCELERATORS if _key(a.id).startswith(key) or key in _key(a.name)]
    if len(matches) == 1:
        return matches[0]
    exact = [a for a in matches if _key(a.id) == key]
    if exact:
        return exact[0]
    choices = ", ".join(a.id for a in ACCELERATORS)
    if not matches:
        raise ValueError(f"unknown accelerator {name!r}; choose one of: {choices}")
    raise ValueError(f"{name!r} matches several accelerators ({', '.join(a.id for a in matches)}); "
                     f"choose one of: {choices}")
