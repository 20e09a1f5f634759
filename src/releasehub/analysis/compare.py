"""Models side by side, in the three tables of the paper: resourcing, technical usability, utility.

Columns are models; rows follow the paper's tables ("Resourcing: Comparing Models", and the
usability and utility comparisons), plus a short openness table. A closed model shows
"N/A (deployer supplied)" where the paper does, and its API prices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .render import Section, _fact
from .units import both, usd


def _gpu(profile: Mapping[str, Any], gpu: str) -> Mapping[str, Any] | None:
    for item in (profile.get("resourcing") or {}).get("gpus") or []:
        if item["gpu"] == gpu:
            return item
    return None


def _closed(profile: Mapping[str, Any]) -> bool:
    return profile.get("weights") == "closed"


def _deployment_row(render: Callable[[Mapping[str, Any], str], str]) -> Callable[[Mapping[str, Any], str], str]:
    """A row about hosting on `gpu`: N/A for closed models, a dash when that accelerator was not planned."""

    def row(profile: Mapping[str, Any], gpu: str) -> str:
        if _closed(profile):
            return "N/A (deployer supplied)"
        item = _gpu(profile, gpu)
        return "—" if item is None else render(item, gpu)

    return row


@_deployment_row
def _hosting(item: Mapping[str, Any], gpu: str) -> str:
    deployable = item.get("deployable")
    extra = f", {deployable} deployable ({item.get('note')})" if deployable and deployable != item["by_memory"] else ""
    return f"{item['by_memory']} x {gpu} by memory{extra}, server, maintenance"


@_deployment_row
def _hosting_cost(item: Mapping[str, Any], gpu: str) -> str:
    cost = item.get("cost") or {}
    return (f"{usd(cost.get('purchase_usd'), 0)} for {cost.get('devices')} GPUs + "
            f"{usd(cost.get('energy_per_year_usd'), 0)}/year energy, server, maintenance")


@_deployment_row
def _inference_cost(item: Mapping[str, Any], gpu: str) -> str:
    cost = item.get("cost") or {}
    rental = (cost.get("rental_usd") or {}).get("per_hour")
    per_m = cost.get("usd_per_million_tokens")
    parts = []
    if rental is not None:
        parts.append(f"{usd(rental)}/hour rented")
    if per_m is not None:
        parts.append(f"{usd(per_m)} / 1M tokens ({'measured' if 'measured' in cost.get('throughput_source', '') else 'single-stream estimate'})")
    return "; ".join(parts) or "—"


def _api(profile: Mapping[str, Any]) -> str:
    prices = (profile.get("resourcing") or {}).get("api") or []
    if not prices:
        return "—"
    out = []
    for p in prices:
        cached = f" ({usd(p['cached_input_per_mtok'])} cached)" if p.get("cached_input_per_mtok") is not None else ""
        out.append(f"{p['provider']}: input {usd(p['input_per_mtok'])}{cached} / output "
                   f"{usd(p['output_per_mtok'])} per 1M tokens")
    return "; ".join(out)


def _weights(profile: Mapping[str, Any], precision: str) -> str:
    if _closed(profile):
        return "N/A (closed weights)"
    value = ((profile.get("resourcing") or {}).get("weights_bytes") or {}).get(precision)
    return both(value)


def _kv(profile: Mapping[str, Any]) -> str:
    kv = (profile.get("resourcing") or {}).get("kv_cache") or {}
    if "bytes" not in kv:
        return "—"
    return f"{both(kv['bytes'])} at {kv['context']:,} tokens ({kv['bytes_per_token']:,} bytes/token)"


def _get(profile: Mapping[str, Any], *path: str) -> Any:
    value: Any = profile
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _params(profile: Mapping[str, Any]) -> str:
    p = profile.get("parameters") or {}
    if not p.get("total"):
        return "undisclosed"
    active = p.get("active")
    return f"{p['total'] / 1e9:,.1f}B" + (f" ({active / 1e9:,.1f}B active)" if active and active != p["total"] else "")


def _fine_tuning(profile: Mapping[str, Any]) -> str:
    ft = _get(profile, "usability", "fine_tunability") or {}
    if not ft:
        return "—"
    methods = ", ".join(ft.get("methods") or [])
    local = _fact(ft.get("local"))
    return f"locally: {local}" + (f" ({methods})" if methods and local.startswith("yes") else "") + \
        f"; by API: {_fact(ft.get('api'))}"


def compare_sections(profiles: Sequence[Mapping[str, Any]], gpu: str = "h100-80gb") -> list[Section]:
    names = [str(p.get("name") or p.get("target")) for p in profiles]
    columns = ("", *names)

    def table(title: str, rows: Sequence[tuple[str, Any]]) -> Section:
        s = Section(title, columns)
        for label, fn in rows:
            s.rows.append((label, *[fn(p) for p in profiles]))
        return s

    resourcing = table("Resourcing: comparing models", [
        ("Parameters", _params),
        ("Weights, BF16", lambda p: _weights(p, "bf16")),
        ("Weights, FP8", lambda p: _weights(p, "fp8")),
        ("Weights, INT4", lambda p: _weights(p, "int4")),
        ("KV cache", _kv),
        ("Hosting infrastructure", lambda p: _hosting(p, gpu)),
        ("Hosting cost", lambda p: _hosting_cost(p, gpu)),
        ("Inference cost", lambda p: _inference_cost(p, gpu)),
        ("API cost per token", _api),
    ])
    usability = table("Technical usability: comparing models", [
        ("User interface", lambda p: _fact(_get(p, "usability", "interfaces", "ui"))),
        ("Developer API", lambda p: _fact(_get(p, "usability", "interfaces", "developer_api"))),
        ("Third-party APIs", lambda p: _fact(_get(p, "usability", "interfaces", "third_party_api"))),
        ("Fine-tuning", _fine_tuning),
        ("License", lambda p: _fact(_get(p, "usability", "license", "name"))),
        ("License family", lambda p: _fact(_get(p, "usability", "license", "family"))),
        ("Technical skill", lambda p: _fact(_get(p, "usability", "technical_skill", "level"))),
        ("To self-host", lambda p: _fact(_get(p, "usability", "technical_skill", "self_host_level"))),
    ])
    utility = table("Utility: comparing models", [
        ("Languages", lambda p: _fact(_get(p, "utility", "languages"))),
        ("Input modalities", lambda p: _fact(_get(p, "utility", "modalities_in"))),
        ("Output modalities", lambda p: _fact(_get(p, "utility", "modalities_out"))),
        ("Context length", lambda p: _fact(_get(p, "utility", "context_length"))),
        ("Maximum output", lambda p: _fact(_get(p, "utility", "max_output_tokens"))),
        ("Knowledge cutoff", lambda p: _fact(_get(p, "utility", "knowledge_cutoff"))),
    ])
    openness = table("Openness", [
        ("MOF class", lambda p: _fact(_get(p, "openness", "mof", "label")) if _get(p, "openness", "mof_class")
         else "not classed"),
        ("OSI OSAID 1.0", lambda p: _fact(_get(p, "openness", "osi", "verdict"))),
    ])
    return [resourcing, usability, utility, openness]
