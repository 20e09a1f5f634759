"""The paper's resourcing figures, recomputed with its own assumptions, and where it is wrong.

"Beyond Release" (Solaiman et al., 2025), section 4.1.4 and Appendix A, sizes Llama 3.1 405B
Instruct and DeepSeek V3. Each figure below is recomputed by the calculators of `resourcing`
with the assumptions the paper states (or evidently used), then compared with the printed
value. Where the two disagree, or the printed value rests on a wrong fact about the model, the
figure carries the correct value and says why. `releasehub paper` prints this list and
docs/analysis.md reproduces it; the tests pin every figure.

The paper's assumptions: 405e9 parameters (the nominal size; the checkpoint has
405,853,388,800), memory in decimal GB, an H100 holds 80 GB and costs $25,000, an H200 $32,000,
700 W per GPU running all year, $0.177 per kWh (U.S. average) or $0.381 (San Francisco),
$8.25 per GPU-hour, 5 seconds per request of 500 input and 100 output tokens on 8 GPUs, and no
serving overhead in the GPU counts.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from . import resourcing as r
from .architecture import Architecture, Attention
from .hardware import GB, GIB, Accelerator

PAPER = "Beyond Release: Access Considerations for Generative AI Systems (Solaiman et al., 2025)"
NOMINAL_PARAMETERS = 405 * 10**9
H100_PAPER = Accelerator("h100-80gb", "NVIDIA H100 (80 GB as the paper counts it)", 80 * GB, 700, 25_000, 8.25, 8,
                         "datacenter")
H200_PRICE = 32_000
US_KWH, SF_KWH = 0.177, 0.381
GPU_HOUR = 8.25


@dataclass(frozen=True)
class Figure:
    id: str
    label: str
    printed: str            # as the paper prints it
    computed: float         # recomputed here, with the paper's assumptions
    unit: str               # "GB", "GiB", "GPUs", "USD"
    agrees: bool            # the printed value is what the assumptions give (to its printed precision)
    correct: str | None     # the right figure, when the paper's is wrong
    why: str                # how it is computed, and what is wrong if anything

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _llama_405b(kv_heads: int) -> Architecture:
    """Llama 3.1 405B's shape (126 layers, 128 heads of 128), with a chosen number of KV heads."""
    attention = Attention(kind="gqa", heads=128, kv_heads=kv_heads, head_dim=128, v_head_dim=128)
    return Architecture(model_type="llama", layers=126, hidden=16384, vocab=128256, intermediate=53248,
                        attention=attention, layer_kinds=("full_attention",) * 126, sliding_window=None,
                        experts=None, moe_layers=(False,) * 126, tied_embeddings=False, max_context=131072)


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def paper_figures() -> list[Figure]:
    fp16 = r.weight_bytes(NOMINAL_PARAMETERS, "fp16")
    fp8 = r.weight_bytes(NOMINAL_PARAMETERS, "fp8")
    paper_kv = _llama_405b(kv_heads=16).kv_bytes(128_000, 2)
    true_kv = _llama_405b(kv_heads=8).kv_bytes(131_072, 2)

    def gpus(required: int) -> r.Deployment:
        return r.plan_deployment(required, H100_PAPER, heads=128, kv_heads=8, layers=126)

    fp8_plan, fp16_plan = gpus(fp8), gpus(fp16)
    # The paper adds its KV figure, which is in GiB, to weights in GB: reproduce that, then do it right.
    with_paper_kv = math.ceil((fp16 / GB + paper_kv / GIB) / 80)
    with_true_kv = gpus(fp16 + true_kv)
    energy = {(n, price): r.energy_cost_per_year(n, 700, price) for n in (8, 12) for price in (US_KWH, SF_KWH)}
    rental = r.rental_cost(8, GPU_HOUR)
    request = r.cost_per_request(8, GPU_HOUR, 5)
    per_million_input = request / 500 * 1_000_000
    figures = [
        Figure("llama-fp16-weights", "Llama 3.1 405B weights at 16 bits", "810 GB", fp16 / GB, "GB", True, None,
               "405e9 parameters x 2 bytes. The checkpoint has 405,853,388,800 parameters: 811.7 GB (756.0 GiB)."),
        Figure("llama-fp8-weights", "Llama 3.1 405B weights at 8 bits", "405 GB", fp8 / GB, "GB", True, None,
               "405e9 parameters x 1 byte (405.9 GB for the real count)."),
        Figure("llama-fp8-h100", "H100s to load it in FP8", "8", float(fp8_plan.deployable or 0), "GPUs",
               fp8_plan.deployable == 8, None,
               f"405 GB / 80 GB = {fp8 / GB / 80:.2f}, so {fp8_plan.by_memory} by memory; tensor parallelism must "
               "divide 128 heads and 8 KV heads, so one node deploys it on 8."),
        Figure("llama-fp16-h100", "H100s to load it in FP16", "11", float(fp16_plan.by_memory), "GPUs",
               fp16_plan.by_memory == 11, None,
               f"810 GB / 80 GB = 10.1, so 11 by memory. Deployable: {fp16_plan.deployable} "
               f"({fp16_plan.note})."),
        Figure("llama-kv-128k", "KV cache at the 128K context", "123.05 GB", paper_kv / GIB, "GiB",
               round(paper_kv / GIB, 2) == 123.05,
               f"{true_kv / GIB:.1f} GiB ({true_kv / GB:.1f} GB) at 131,072 tokens",
               "The printed value is 2 (K and V) x 126 layers x 16 KV heads x 128 x 2 bytes x 128,000 tokens, in GiB. "
               "Llama 3.1 405B has 8 KV heads (grouped-query attention), which halves it: "
               f"{true_kv:,} bytes at 131,072 tokens in bf16. A memory figure must say GB or GiB."),
        Figure("llama-fp16-kv-h100", "H100s for FP16 weights plus that KV cache", "12", float(with_paper_kv), "GPUs",
               with_paper_kv == 12,
               f"{with_true_kv.by_memory} by memory ({with_true_kv.deployable} deployable: {with_true_kv.note})",
               f"(810 GB + 123.05) / 80 GB = 11.7, so 12, mixing GB and GiB. With the correct cache, "
               f"{(fp16 + true_kv) / GB:,.1f} GB / 80 GB = {(fp16 + true_kv) / GB / 80:.2f}: still "
               f"{with_true_kv.by_memory}."),
        Figure("llama-fp8-purchase", "Upfront cost of the GPUs, FP8", "$200,000",
               r.hardware_cost(8, H100_PAPER.price_usd), "USD", True, None, "8 x $25,000, servers excluded."),
        Figure("llama-fp16-purchase", "Upfront cost of the GPUs, FP16", "$300,000",
               r.hardware_cost(12, H100_PAPER.price_usd), "USD", True, None, "12 x $25,000, servers excluded."),
        Figure("deepseek-purchase", "DeepSeek V3 base infrastructure", "$256,000", r.hardware_cost(8, H200_PRICE),
               "USD", True, None, "8 H200 x $32,000."),
        Figure("energy-8-us", "Energy a year, 8 GPUs, U.S. average", "$8,682.91", energy[8, US_KWH], "USD",
               _usd(energy[8, US_KWH]) == "$8,682.91", None, "8 x 0.7 kW x 8,760 h x $0.177/kWh."),
        Figure("energy-8-sf", "Energy a year, 8 GPUs, San Francisco", "$18,690.34", energy[8, SF_KWH], "USD",
               _usd(energy[8, SF_KWH]) == "$18,690.34", None, "8 x 0.7 kW x 8,760 h x $0.381/kWh."),
        Figure("energy-12-us", "Energy a year, 12 GPUs, U.S. average", "$13,024.39", energy[12, US_KWH], "USD",
               _usd(energy[12, US_KWH]) == "$13,024.39", _usd(energy[12, US_KWH]),
               "12 x 0.7 kW x 8,760 h x $0.177/kWh = $13,024.368: the printed figure is 2 cents off, a rounding slip "
               "(1.5 x the rounded 8-GPU figure is $13,024.37 too)."),
        Figure("energy-12-sf", "Energy a year, 12 GPUs, San Francisco", "$28,035.50", energy[12, SF_KWH], "USD",
               _usd(energy[12, SF_KWH]) == "$28,035.50", None, "12 x 0.7 kW x 8,760 h x $0.381/kWh."),
        Figure("rental-day", "Renting 8 GPUs, a day", "$1,584", rental["per_day"], "USD",
               round(rental["per_day"]) == 1584, None, "8 x $8.25 x 24 h."),
        Figure("rental-year", "Renting 8 GPUs, a year", "$578,160", rental["per_year"], "USD",
               round(rental["per_year"]) == 578_160, None, "8 x $8.25 x 8,760 h."),
        Figure("request-cost", "One request (500 input + 100 output tokens, 5 s)", "$0.0917", request, "USD",
               round(request, 4) == 0.0917, None, "8 GPUs x $8.25/h x 5 s / 3,600 s."),
        Figure("per-million-input", "Cost per million input tokens", "$18.34", per_million_input, "USD",
               round(per_million_input, 2) == 18.34, f"${per_million_input:,.2f} per million input tokens",
               f"$0.0917 per 500 input tokens x 2,000 = ${per_million_input:,.2f} (${0.0917 * 2000:,.2f} from the "
               "rounded request cost), ten times the printed figure; and it charges the 100 output tokens' time to "
               "the input."),
        Figure("deepseek-fp8-size", "DeepSeek V3 size in FP8", "about 1.3 TB", 685e9 / 1e12 * 1000, "GB", False,
               "about 0.69 TB (685 GB: 671B main model + 14B multi-token-prediction module, 1 byte each)",
               "At 1 byte per parameter 671B-685B parameters are 0.67-0.69 TB; 1.3-1.4 TB is the BF16 size."),
        Figure("deepseek-bf16-size", "DeepSeek V3 size in BF16", "2.5 TB", 685e9 * 2 / 1e12 * 1000, "GB", False,
               "about 1.37 TB (685e9 x 2 bytes)", "BF16 doubles the FP8 size: 1.37 TB, not 2.5 TB."),
        Figure("llama-full-finetune", "Full fine-tuning memory", "3.25 TB", 16 * 405.853388800e9 / 1e9, "GB", False,
               f"about {16 * 405.8533888e9 / 1e12:.2f} TB with mixed-precision Adam (16 bytes per parameter), "
               "before activations",
               "The cited 3.25 TB is 8 bytes per parameter (bf16 weights and gradients with a 4-byte optimiser "
               "state); mixed-precision Adam with fp32 master weights needs 16 bytes per parameter."),
    ]
    return figures
