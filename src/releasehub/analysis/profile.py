"""The access profile: one document with what it takes to run, use and build on a release.

`build_profile` gathers the facts (file list, config.json, model card, weight headers, a
reference catalogue entry) and hands them to the calculators and judgements. The result is a
plain JSON-able dict, so the CLI, the HTTP API and the cache all carry exactly the same thing.
Its keys are documented in docs/analysis.md; every size is an integer number of bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..access.licenses import license_from_card
from ..repos.cards import parse_card
from . import resourcing as r
from .architecture import Architecture, UnsupportedConfig, architecture_from_config
from .catalogue import CatalogueEntry
from .hardware import ACCELERATORS, DEFAULT_GPUS, Accelerator, find_accelerator
from .openness import judge_openness
from .readers.gguf import GGUFHeader, gguf_config
from .readers.safetensors import WeightsSummary
from .readers.source import AnalysisError
from .snapshot import Snapshot, load_weights
from .usability import HardwareNeed, judge_usability
from .utility import judge_utility

# Bump when the profile's content or meaning changes: cached profiles of older versions are recomputed.
PROFILE_VERSION = 1
DEFAULT_CONTEXT_CAP = 131_072
CONSUMER_GPU = "rtx-4090"
LAPTOP = "laptop-32gb"


@dataclass(frozen=True)
class Options:
    context: int | None = None                # KV cache tokens; None = the model's maximum, capped at 131,072
    gpus: tuple[str, ...] = DEFAULT_GPUS      # accelerator ids to plan for
    precision: str | None = None              # serving precision; None = as published
    assumptions: r.Assumptions = field(default_factory=r.Assumptions)
    throughput: float | None = None           # measured tokens/s of the deployment, for cost per million tokens
    gpu_hour: float | None = None             # override the catalogue's rental price per device-hour
    progress: Callable[[int, int], None] | None = None

    def accelerators(self) -> list[Accelerator]:
        return [find_accelerator(name) for name in self.gpus]


def _json_file(snapshot: Snapshot, path: str, warnings: list[str]) -> dict[str, Any] | None:
    text = snapshot.read_text(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        warnings.append(f"{path} is not valid JSON ({exc}); it was ignored.")
        return None
    if not isinstance(value, dict):
        warnings.append(f"{path} is not a JSON object; it was ignored.")
        return None
    return value


def _published_precision(weights: WeightsSummary | None, config: Mapping[str, Any] | None,
                         entry: CatalogueEntry | None) -> str:
    if weights is not None:
        if weights.quantization and weights.quantization.lower() in ("gptq", "awq", "bitsandbytes-4bit"):
            return "int4"
        by_dtype = {r.DTYPE_PRECISION.get(k): v for k, v in weights.parameters_by_dtype.items()}
        by_dtype.pop(None, None)
        if by_dtype:
            return max(by_dtype.items(), key=lambda kv: kv[1])[0] or "bf16"
    quant = (config or {}).get("quantization_config")
    if isinstance(quant, Mapping):
        method = str(quant.get("quant_method") or "").lower()
        bits = quant.get("bits") or quant.get("weight_bits")
        if method == "fp8":
            return "fp8"
        if bits in (4, 8):
            return "int4" if bits == 4 else "int8"
    for source in (config or {}, (config or {}).get("text_config") or {}):
        dtype = source.get("torch_dtype") or source.get("dtype")
        if isinstance(dtype, str) and dtype in r.DTYPE_PRECISION:
            return r.DTYPE_PRECISION[dtype]
    published = entry.published_precision if entry is not None else None
    if published is not None and published in r.PRECISIONS:
        return published
    return "bf16"


# Publishers count "active" parameters differently (some leave the input embedding out): say how ours are.
ACTIVE_COUNTING = ("active: what one token passes through, the input embedding and the output head included: "
                   "attention and dense layers whole, and in each mixture-of-experts layer only the shared experts, "
                   "the router and the num_experts_per_tok routed experts a token uses")


def _parameters(weights: WeightsSummary | None, arch: Architecture | None,
                entry: CatalogueEntry | None) -> dict[str, Any]:
    from_config = arch.parameters() if arch is not None else None
    published = (entry.published_parameters or {}) if entry is not None else {}
    out: dict[str, Any] = {"total": None, "active": None, "source": None,
                           "from_weights": weights.parameters if weights else None,
                           "from_config": from_config.total if from_config else None,
                           "published": published.get("total"),
                           "by_dtype": dict(weights.parameters_by_dtype) if weights else {},
                           "breakdown": from_config.as_dict() if from_config else None}
    if weights is not None and weights.parameters:
        out["total"], out["source"] = weights.parameters, "weights"
    elif from_config is not None:
        out["total"], out["source"] = from_config.total, "config"
    elif published.get("total"):
        out["total"], out["source"] = int(published["total"]), "catalogue"
    if out["total"] is not None:
        inactive = (from_config.total - from_config.active) if from_config else 0
        if from_config is None and published.get("active"):
            out["active"] = int(published["active"])
        else:
            out["active"] = out["total"] - inactive
        if out["active"] != out["total"]:
            out["active_counting"] = ACTIVE_COUNTING
    return out


def _contexts(max_context: int | None) -> list[int]:
    """4K, 8K, ... up to the model's maximum context (and the maximum itself), for the context chart."""
    top = max_context or DEFAULT_CONTEXT_CAP
    points = [1 << k for k in range(12, 25) if (1 << k) < top]
    return points + [top]


def _kv(arch: Architecture | None, options: Options) -> tuple[dict[str, Any], int]:
    a = options.assumptions
    if arch is None:
        return {"note": "needs config.json (or GGUF metadata) to size the KV cache"}, 0
    context = options.context or min(arch.max_context or DEFAULT_CONTEXT_CAP, DEFAULT_CONTEXT_CAP)
    element = r.precision_bytes(a.kv_dtype)
    total = arch.kv_bytes(context, element, a.batch)
    cached = ("compressed latent (kv_lora_rank + qk_rope_head_dim) per layer" if arch.attention.kind == "mla"
              else f"keys and values of {arch.attention.kv_heads} KV heads x {arch.attention.head_dim} per layer")
    return {
        "dtype": a.kv_dtype, "bytes_per_token": arch.kv_bytes_per_token(element), "context": context,
        "batch": a.batch, "bytes": total, "attention": arch.attention.kind, "cached": cached,
        "sliding_window": arch.sliding_window,
        "bytes_at_max_context": arch.kv_bytes(arch.max_context, element, a.batch) if arch.max_context else None,
        "max_context": arch.max_context,
    }, total


def _costs(plan: r.Deployment, accel: Accelerator, active_bytes: int, options: Options,
           api: Sequence[Any]) -> dict[str, Any]:
    a = options.assumptions
    devices = plan.deployable or plan.by_memory
    hour = options.gpu_hour if options.gpu_hour is not None else accel.gpu_hour_usd
    out: dict[str, Any] = {
        "devices": devices,
        "purchase_usd": r.hardware_cost(devices, accel.price_usd),
        "energy_per_year_usd": round(r.energy_cost_per_year(devices, accel.watts, a.kwh_price_usd, a.utilisation), 2),
        "energy_kwh_per_year": round(devices * accel.watts / 1000 * r.HOURS_PER_YEAR * a.utilisation, 1),
    }
    if hour is not None:
        out["rental_usd"] = {k: round(v, 2) for k, v in r.rental_cost(devices, hour).items()}
        out["gpu_hour_usd"] = hour
    decode = r.decode_tokens_per_second(active_bytes, accel, plan.tensor_parallel or 1, a.decode_efficiency)
    if decode is not None:
        out["decode_tokens_per_second_estimate"] = round(decode, 1)
    throughput = options.throughput or decode
    if hour is not None and throughput:
        out["usd_per_million_tokens"] = round(r.cost_per_million_tokens(devices, hour, throughput), 2)
        out["throughput_source"] = "measured (--throughput)" if options.throughput else (
            "single-stream decode estimate from memory bandwidth; batched serving costs far less per token")
    return out


def build_profile(snapshot: Snapshot | None, *, entry: CatalogueEntry | None = None,
                  options: Options | None = None) -> dict[str, Any]:
    """The access profile of a snapshot (repo, directory or file), a catalogue entry, or both."""
    options = options or Options()
    if snapshot is None and entry is None:
        raise AnalysisError("nothing to analyse: give a repo, a directory, a file or a catalogue name")
    warnings: list[str] = []
    notes: list[str] = []
    files: dict[str, int] = snapshot.files() if snapshot is not None else {}
    config: dict[str, Any] | None = None
    card: dict[str, Any] | None = None
    card_text = ""
    weights: WeightsSummary | None = None
    if snapshot is not None:
        config = _json_file(snapshot, "config.json", warnings) if "config.json" in files else None
        readme = snapshot.read_text("README.md") if "README.md" in files else None
        if readme is not None:
            card, card_error = parse_card(readme)
            if card_error:
                warnings.append(f"README.md: {card_error}")
            card_text = readme
        try:
            weights = load_weights(snapshot, progress=options.progress)
        except AnalysisError as exc:
            # A broken or unusual weight file must not hide the rest of the profile.
            warnings.append(f"weights not read: {exc}")
    if config is None and entry is not None and entry.config:
        config = dict(entry.config)
    if config is None and weights is not None and weights.format == "gguf":
        config = gguf_config(GGUFHeader(version=0, metadata=dict(weights.metadata), tensors=(), header_bytes=0,
                                        data_offset=0))
    arch: Architecture | None = None
    if config is not None:
        try:
            arch = architecture_from_config(config)
            notes.extend(arch.notes)
        except UnsupportedConfig as exc:
            warnings.append(str(exc))

    parameters = _parameters(weights, arch, entry)
    total, active = parameters["total"], parameters["active"]
    precision = options.precision or _published_precision(weights, config, entry)
    published_bytes = weights.stored_bytes if weights is not None else (
        r.weight_bytes(total, precision) if total else None)
    overrides = card.get("access_profile") if isinstance(card, Mapping) else None
    if overrides is not None and not isinstance(overrides, Mapping):
        warnings.append("README.md: access_profile must be a mapping; it was ignored.")
        overrides = None
    license_card = card if card is not None else (
        {"license": entry.license.get("id"), "license_name": entry.license.get("name"),
         "license_link": entry.license.get("link")} if entry is not None else None)
    license = license_from_card(license_card)

    resourcing: dict[str, Any] = {"assumptions": options.assumptions.as_dict() | {"precision": precision}}
    hardware_need: HardwareNeed | None = None
    weights_available = bool(weights) or (entry is not None and entry.weights == "open")
    if total:
        weights_bytes = r.weights_by_precision(total, published_bytes)
        serving_weights = (weights_bytes["published"] if options.precision is None and weights is not None
                           else weights_bytes[precision])
        kv, kv_bytes = _kv(arch, options)
        required = r.serving_bytes(serving_weights, kv_bytes, options.assumptions.overhead_fraction)
        accelerators = options.accelerators()
        plans = r.plan_all(required, accelerators, arch)
        active_bytes = math.ceil((active or total) * r.precision_bytes(precision))
        api = entry.api if entry is not None else ()
        gpus: list[dict[str, Any]] = []
        for plan, accel in zip(plans, accelerators):
            item = plan.as_dict() | {"precision": precision, "memory_bytes": accel.memory_bytes,
                                     "usable_bytes": accel.usable_bytes}
            item["cost"] = _costs(plan, accel, active_bytes, options, api)
            gpus.append(item)
        by_precision = {}
        for name in ("fp32", "bf16", "fp8", "int4"):
            need = r.serving_bytes(weights_bytes[name], kv_bytes, options.assumptions.overhead_fraction)
            by_precision[name] = [{"gpu": p.gpu, "by_memory": p.by_memory, "deployable": p.deployable}
                                  for p in r.plan_all(need, accelerators, arch)]
        by_context = []
        if arch is not None:
            element = r.precision_bytes(options.assumptions.kv_dtype)
            for context in _contexts(arch.max_context):
                kv_at = arch.kv_bytes(context, element, options.assumptions.batch)
                need = r.serving_bytes(serving_weights, kv_at, options.assumptions.overhead_fraction)
                by_context.append({"context": context, "kv_bytes": kv_at, "serving_bytes": need,
                                   "gpus": {p.gpu: p.by_memory for p in r.plan_all(need, accelerators, arch)}})
        resourcing.update(
            gpus_by_context=by_context,
            weights_bytes=weights_bytes, kv_cache=kv, serving_bytes=required,
            overhead_bytes=required - serving_weights - kv_bytes, gpus=gpus, gpus_by_precision=by_precision,
            fine_tuning=r.fine_tuning(arch, total, options.assumptions),
        )
        consumer = r.plan_deployment(required, find_accelerator(CONSUMER_GPU), 1, 1, 1 << 30)
        laptop = find_accelerator(LAPTOP)
        first = next((g for g in gpus if g["deployable"]), None)
        if first is not None:
            hardware_need = HardwareNeed(gpu=first["gpu"], gpus=first["deployable"], nodes=first["nodes"] or 1,
                                         fits_consumer_gpu=consumer.by_memory == 1,
                                         fits_laptop=required <= laptop.usable_bytes)
    else:
        resourcing["note"] = ("closed weights: hosting is the developer's, so the deployer supplies nothing but "
                              "API calls" if entry is not None and entry.weights == "closed"
                              else "no weights, config.json or catalogue entry to size the model from")
    if entry is not None and entry.api:
        resourcing["api"] = [
            {"provider": p.provider, "input_per_mtok": p.input_per_mtok, "output_per_mtok": p.output_per_mtok,
             "cached_input_per_mtok": p.cached_input_per_mtok, "source": p.source, "as_of": p.as_of,
             "usd_per_request_500_in_100_out": (round(r.api_request_cost(500, 100, p.input_per_mtok,
                                                                         p.output_per_mtok), 6)
                                                if p.input_per_mtok is not None and p.output_per_mtok is not None
                                                else None)}
            for p in entry.api
        ]

    catalogue_card = entry.card if entry is not None else None
    judgements: dict[str, Any] = {}
    for name, judge in (
        ("usability", lambda: judge_usability(files, card, card_text, license, overrides,
                                              weights_available=weights_available, hardware=hardware_need,
                                              catalogue_card=catalogue_card)),
        ("utility", lambda: judge_utility(card, card_text, config, overrides,
                                          gguf_metadata=weights.metadata if weights and weights.format == "gguf"
                                          else None, catalogue_card=catalogue_card)),
        ("openness", lambda: judge_openness(files, card, card_text, config, license, overrides,
                                            catalogue_components=(catalogue_card or {}).get("components"),
                                            weights_available=weights_available)),
    ):
        try:
            judgements[name] = judge().model_dump(mode="json")
        except (ValueError, AnalysisError) as exc:
            # A malformed `access_profile` override must not hide the rest of the profile.
            warnings.append(f"{name}: {exc}")
            judgements[name] = None
    openness = judgements["openness"] or {}
    mof = openness.get("mof") or {}
    reading = {
        "format": weights.format if weights else None,
        "files": len(weights.files) if weights else 0,
        "requests": snapshot.stats.requests if snapshot is not None else 0,
        "bytes_fetched": snapshot.stats.bytes if snapshot is not None else 0,
        "stored_bytes": weights.stored_bytes if weights else 0,
        "header_bytes": weights.header_bytes if weights else 0,
        "quantization": weights.quantization if weights else None,
        "bits_per_parameter": weights.bits_per_parameter if weights else None,
    }
    return {
        "profile_version": PROFILE_VERSION,
        "target": snapshot.name if snapshot is not None else entry.id if entry is not None else None,
        "revision": snapshot.revision if snapshot is not None else None,
        "name": entry.name if entry is not None else (snapshot.name if snapshot is not None else None),
        "catalogue_id": entry.id if entry is not None else None,
        "weights": "open" if weights_available else ("closed" if entry is not None and entry.weights == "closed"
                                                    else "absent"),
        "reading": reading,
        "parameters": parameters,
        "architecture": arch.summary() if arch is not None else None,
        "resourcing": resourcing,
        "usability": judgements["usability"],
        "utility": judgements["utility"],
        "openness": {"mof_class": mof.get("mof_class"), **openness} if openness else {"mof_class": None},
        "notes": notes,
        "warnings": warnings,
    }


def with_options(options: Options, **changes: Any) -> Options:
    return replace(options, **changes)


__all__ = ["ACCELERATORS", "Options", "PROFILE_VERSION", "build_profile", "with_options"]
