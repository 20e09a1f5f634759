"""What it takes to run a model: memory, accelerators, fine-tuning memory, energy and money.

Pure calculators over integers (bytes) and floats (dollars). Every assumption is a field of
`Assumptions` and goes into the profile next to the figures it produced, so a reader can see
why a number is what it is and recompute it with their own.

Memory model (stated in the output):
- weights at a precision = parameters x bytes per parameter (fp32 4, bf16/fp16 2, fp8/int8 1,
  int4 0.5), uniform: real quantised checkpoints keep embeddings and norms wider, so "as
  published" (read from the headers) is the figure to trust when it is there;
- serving needs weights x (1 + overhead) + KV cache; the default overhead of 20% is the rule of
  thumb the paper cites (activations, CUDA context, fragmentation);
- accelerators by memory = ceil(required / usable memory of one device);
- deployable: tensor parallelism inside one node must divide both the attention heads and the
  KV heads; if no such degree fits in one node, each node becomes a pipeline stage running the
  largest such degree, so the count is degree x nodes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass

from .architecture import Architecture
from .hardware import Accelerator

PRECISIONS: Mapping[str, float] = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
HOURS_PER_YEAR = 8760


def precision_bytes(precision: str) -> float:
    try:
        return PRECISIONS[precision]
    except KeyError:
        raise ValueError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}") from None


# Safetensors / torch dtype names -> our precision names, for "as published".
DTYPE_PRECISION: Mapping[str, str] = {
    "F32": "fp32", "float32": "fp32", "BF16": "bf16", "bfloat16": "bf16", "F16": "fp16", "float16": "fp16",
    "F8_E4M3": "fp8", "F8_E5M2": "fp8", "float8_e4m3fn": "fp8", "I8": "int8", "int8": "int8", "int4": "int4",
}


@dataclass(frozen=True)
class Assumptions:
    """Everything a resourcing figure depends on besides the model; shown with the figures."""

    overhead_fraction: float = 0.20          # serving memory beyond weights and KV cache, as a share of weights
    kv_dtype: str = "bf16"
    context: int | None = None               # tokens of KV cache per sequence; None = the model's maximum
    batch: int = 1                           # concurrent sequences
    kwh_price_usd: float = 0.177             # U.S. average, August 2024 (the paper's figure)
    utilisation: float = 1.0                 # share of the year the accelerators draw their rated power
    decode_efficiency: float = 0.6           # share of memory bandwidth a single decode stream achieves
    fine_tune_sequence: int = 2048
    fine_tune_batch: int = 1
    lora_rank: int = 16

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# Memory


def weight_bytes(parameters: int, precision: str) -> int:
    return math.ceil(parameters * precision_bytes(precision))


def weights_by_precision(parameters: int, published: int | None = None) -> dict[str, int]:
    out = {name: weight_bytes(parameters, name) for name in PRECISIONS}
    if published is not None:
        out["published"] = published
    return out


def serving_bytes(weights: int, kv_cache: int, overhead_fraction: float) -> int:
    return math.ceil(weights * (1 + overhead_fraction)) + kv_cache


@dataclass(frozen=True)
class Deployment:
    gpu: str
    name: str
    memory_bytes: int
    required_bytes: int
    by_memory: int
    deployable: int | None           # None when the model cannot be split that far (more stages than layers)
    tensor_parallel: int | None
    pipeline_parallel: int | None
    nodes: int | None
    note: str

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def plan_deployment(required: int, accel: Accelerator, heads: int, kv_heads: int, layers: int) -> Deployment:
    usable = accel.usable_bytes
    by_memory = max(1, math.ceil(required / usable))

    def done(deployable: int | None, tp: int | None, pp: int | None, nodes: int | None, note: str) -> Deployment:
        return Deployment(accel.id, accel.name, accel.memory_bytes, required, by_memory, deployable, tp, pp, nodes,
                          note)

    if accel.per_node == 1:
        if by_memory == 1:
            return done(1, 1, 1, 1, "fits one device")
        if by_memory > layers:
            return done(None, None, None, None, f"would need {by_memory} pipeline stages for {layers} layers")
        return done(by_memory, 1, by_memory, by_memory, f"{by_memory} hosts as pipeline stages")
    degrees = [t for t in _divisors(math.gcd(heads, kv_heads)) if t <= accel.per_node]
    for t in degrees:
        if t * usable >= required:
            note = "fits one device" if t == 1 else f"tensor parallel {t} in one node"
            return done(t, t, 1, 1, note)
    t = degrees[-1]
    stages = math.ceil(required / (t * usable))
    if stages > layers:
        return done(None, None, None, None, f"would need {stages} pipeline stages for {layers} layers")
    nodes = math.ceil(t * stages / accel.per_node)
    why = ("" if t == accel.per_node else
           f"; tensor parallel is limited to {t} because it must divide {heads} heads and {kv_heads} KV heads")
    return done(t * stages, t, stages, nodes,
                f"tensor parallel {t} x {stages} pipeline stages across {nodes} nodes{why}")


def plan_all(required: int, accelerators: Iterable[Accelerator], arch: Architecture | None) -> list[Deployment]:
    heads = arch.attention.heads if arch else 1
    kv_heads = arch.attention.kv_heads if arch else 1
    layers = arch.layers if arch else 1 << 30
    return [plan_deployment(required, accel, heads, kv_heads, layers) for accel in accelerators]


# ---------------------------------------------------------------------------------------------
# Fine-tuning


def _linear_shapes(arch: Architecture) -> list[tuple[int, int]]:
    """(in, out) of the linear maps LoRA adapts in one layer: attention and the dense or shared MLP."""
    a, h = arch.attention, arch.hidden
    if a.kind == "mla":
        assert a.kv_lora_rank is not None and a.qk_rope_head_dim is not None
        q = ([(h, a.q_lora_rank), (a.q_lora_rank, a.heads * a.head_dim)] if a.q_lora_rank
             else [(h, a.heads * a.head_dim)])
        attn = q + [(h, a.kv_lora_rank + a.qk_rope_head_dim),
                    (a.kv_lora_rank, a.heads * ((a.qk_nope_head_dim or 0) + a.v_head_dim)),
                    (a.heads * a.v_head_dim, h)]
    else:
        attn = [(h, a.heads * a.head_dim), (h, a.kv_heads * a.head_dim), (h, a.kv_heads * a.head_dim),
                (a.heads * a.head_dim, h)]
    width = arch.intermediate
    if arch.experts is not None and all(arch.moe_layers):
        e = arch.experts
        width = e.shared * e.intermediate + e.shared_intermediate
    mlp = [(h, width), (h, width), (width, h)] if width else []
    return attn + mlp


def lora_parameters(arch: Architecture, rank: int) -> int:
    return arch.layers * sum(rank * (i + o) for i, o in _linear_shapes(arch))


def activation_bytes(arch: Architecture, sequence: int, batch: int) -> int:
    """Training activations with gradient checkpointing and flash attention, in bf16.

    Kept per layer: its input (sequence x hidden x 2 bytes); recomputed for one layer at a time:
    about 34 x hidden bytes per token (Korthikanti et al. 2022, without the attention-score term
    that flash attention does not materialise); plus fp32 logits over the vocabulary.
    """
    tokens = sequence * batch
    return tokens * (2 * arch.hidden * arch.layers + 34 * arch.hidden + 4 * arch.vocab)


def fine_tuning(arch: Architecture | None, parameters: int, assumptions: Assumptions) -> dict[str, object]:
    if arch is None:
        return {"note": "needs the architecture (config.json) to estimate activations and LoRA size"}
    acts = activation_bytes(arch, assumptions.fine_tune_sequence, assumptions.fine_tune_batch)
    lora = lora_parameters(arch, assumptions.lora_rank)
    return {
        "full_bytes": 16 * parameters + acts,
        "lora_bytes": 2 * parameters + 16 * lora + acts,
        "qlora_bytes": math.ceil(parameters * 4.127 / 8) + 16 * lora + acts,
        "activation_bytes": acts,
        "lora_parameters": lora,
        "assumptions": (
            f"Full: mixed-precision Adam, 16 bytes per parameter (bf16 weights and gradients, fp32 master weights "
            f"and two moments). LoRA: rank {assumptions.lora_rank} on every attention and dense MLP projection, frozen "
            f"bf16 weights, adapters trained with the same 16 bytes per parameter. QLoRA: NF4 weights with double "
            f"quantisation, 4.127 bits per parameter. Activations: sequence {assumptions.fine_tune_sequence}, batch "
            f"{assumptions.fine_tune_batch}, gradient checkpointing, flash attention. One device's worth, before "
            f"sharding (ZeRO/FSDP divide it across devices)."
        ),
    }


# ---------------------------------------------------------------------------------------------
# Money and energy


def energy_cost_per_year(devices: int, watts: float, kwh_price: float, utilisation: float = 1.0) -> float:
    """devices x kW x 8,760 h x utilisation x price per kWh."""
    return devices * watts / 1000 * HOURS_PER_YEAR * utilisation * kwh_price


def hardware_cost(devices: int, price: float) -> float:
    return devices * price


def rental_cost(devices: int, device_hour: float) -> dict[str, float]:
    hourly = devices * device_hour
    return {"per_hour": hourly, "per_day": hourly * 24, "per_year": hourly * HOURS_PER_YEAR}


def cost_per_request(devices: int, device_hour: float, seconds: float) -> float:
    return devices * device_hour / 3600 * seconds


def cost_per_million_tokens(devices: int, device_hour: float, tokens_per_second: float) -> float:
    if tokens_per_second <= 0:
        raise ValueError("throughput must be positive tokens per second")
    return devices * device_hour / (tokens_per_second * 3600) * 1_000_000


def api_request_cost(input_tokens: int, output_tokens: int, input_per_mtok: float, output_per_mtok: float) -> float:
    return (input_tokens * input_per_mtok + output_tokens * output_per_mtok) / 1_000_000


def decode_tokens_per_second(active_weight_bytes: int, accel: Accelerator, tensor_parallel: int,
                             efficiency: float) -> float | None:
    """Single-stream decode speed bound by memory bandwidth: each token reads the active weights once."""
    if not accel.bandwidth_bytes_s or active_weight_bytes <= 0:
        return None
    return accel.bandwidth_bytes_s * tensor_parallel * efficiency / active_weight_bytes
