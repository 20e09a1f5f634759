"""Profiles and comparisons as a terminal table, Markdown or HTML.

Every format renders the same `Section` list built by `profile_sections`/`compare_sections`,
so the three never disagree about what a profile says. JSON is the profile dict itself.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .units import both, count, gb, usd


@dataclass
class Section:
    title: str
    columns: Sequence[str] = ()
    rows: list[Sequence[str]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)


def _fact(value: Any) -> str:
    """A judged fact ({value, source, evidence}) or a plain value, as one line."""
    if isinstance(value, Mapping) and "value" in value:
        shown = _fact(value["value"])
        source = value.get("source")
        return f"{shown} ({source})" if source and shown != "—" else shown
    if value is None or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fact(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_fact(v)}" for k, v in value.items())
    if isinstance(value, int) and not isinstance(value, bool) and value > 9999:
        return f"{value:,}"
    return str(value)


def _flat_rows(data: Mapping[str, Any] | None, skip: Sequence[str] = ()) -> list[Sequence[str]]:
    if not data:
        return []
    rows: list[Sequence[str]] = []
    for key, value in data.items():
        if key in skip:
            continue
        rows.append((key.replace("_", " "), _fact(value)))
    return rows


def _model_section(p: Mapping[str, Any]) -> Section:
    params = p.get("parameters") or {}
    arch = p.get("architecture") or {}
    reading = p.get("reading") or {}
    s = Section(p.get("name") or p.get("target") or "model", ("", ""))
    s.rows.append(("target", f"{p.get('target')}" + (f" @ {p['revision'][:12]}" if p.get("revision") else "")))
    s.rows.append(("weights", p.get("weights") or "—"))
    if params.get("total"):
        active = params.get("active")
        moe = f", {count(active)} active" if active and active != params["total"] else ""
        s.rows.append(("parameters", f"{params['total']:,} ({count(params['total'])}{moe}; from {params['source']})"))
        if params.get("active_counting"):
            s.rows.append(("active counts", params["active_counting"]))
        if params.get("published") and params.get("source") != "catalogue":
            s.rows.append(("published", f"{int(params['published']):,}"))
    if arch:
        att = arch.get("attention") or {}
        s.rows.append(("architecture", f"{arch.get('model_type')}: {arch.get('layers')} layers, hidden "
                                       f"{arch.get('hidden_size')}, {att.get('kind', '').upper()} "
                                       f"{att.get('heads')} heads / {att.get('kv_heads')} KV heads of "
                                       f"{att.get('head_dim')}"))
        if arch.get("experts"):
            e = arch["experts"]
            s.rows.append(("experts", f"{e['routed']} routed, {e['per_token']} per token, {e['shared']} shared, "
                                      f"in {e['moe_layers']} layers"))
        s.rows.append(("max context", _fact(arch.get("max_context"))))
    if reading.get("format"):
        fetched = reading.get("bytes_fetched") or 0
        stored = reading.get("stored_bytes") or 0
        share = f" ({100 * fetched / stored:.5f}% of the weights)" if stored and fetched else ""
        s.rows.append(("read", f"{reading['files']} {reading['format']} file(s), {reading['requests']} requests, "
                               f"{fetched:,} bytes fetched{share}"))
        if reading.get("quantization"):
            s.rows.append(("quantization", f"{reading['quantization']} ({reading.get('bits_per_parameter')} bits "
                                           "per parameter stored)"))
    return s


def _resourcing_sections(p: Mapping[str, Any]) -> list[Section]:
    res = p.get("resourcing") or {}
    out: list[Section] = []
    if res.get("note"):
        out.append(Section("Resourcing", text=[res["note"]]))
    weights = res.get("weights_bytes")
    if weights:
        s = Section("Weight memory", ("precision", "bytes", "GB (GiB)"))
        for name, value in weights.items():
            s.rows.append((name, f"{value:,}", both(value)))
        out.append(s)
    kv = res.get("kv_cache")
    if kv and "bytes" in kv:
        s = Section("KV cache", ("", ""))
        s.rows.append(("per token", f"{kv['bytes_per_token']:,} bytes ({kv['dtype']}; {kv['cached']})"))
        s.rows.append((f"at {kv['context']:,} tokens x {kv['batch']}", both(kv["bytes"])))
        if kv.get("sliding_window"):
            s.rows.append(("sliding window", f"{kv['sliding_window']:,} tokens (those layers stop growing there)"))
        out.append(s)
    gpus = res.get("gpus")
    if gpus:
        a = res.get("assumptions") or {}
        s = Section(f"Accelerators to serve it ({a.get('precision')}, {both(res.get('serving_bytes'))} with KV cache "
                    f"and {int(100 * a.get('overhead_fraction', 0))}% overhead)",
                    ("accelerator", "by memory", "deployable", "layout", "purchase", "energy / year",
                     "rental / day", "$ / 1M tokens"))
        for g in gpus:
            cost = g.get("cost") or {}
            rental = (cost.get("rental_usd") or {}).get("per_day")
            s.rows.append((g["gpu"], str(g["by_memory"]), _fact(g.get("deployable")), g.get("note") or "",
                           usd(cost.get("purchase_usd"), 0), usd(cost.get("energy_per_year_usd")),
                           usd(rental, 0) if rental is not None else "—", usd(cost.get("usd_per_million_tokens"))))
        s.text.append(f"Energy at ${a.get('kwh_price_usd')}/kWh and {int(100 * a.get('utilisation', 1))}% "
                      f"utilisation; $ / 1M tokens from "
                      f"{(gpus[0].get('cost') or {}).get('throughput_source', 'an assumed throughput')}.")
        out.append(s)
    ft = res.get("fine_tuning")
    if ft and "full_bytes" in ft:
        s = Section("Fine-tuning memory", ("method", "memory"))
        for key, label in (("full_bytes", "full"), ("lora_bytes", "LoRA"), ("qlora_bytes", "QLoRA")):
            s.rows.append((label, both(ft[key])))
        s.text.append(ft["assumptions"])
        out.append(s)
    api = res.get("api")
    if api:
        s = Section("API prices (per million tokens)", ("provider", "input", "cached input", "output",
                                                         "500 in + 100 out", "as of"))
        for item in api:
            s.rows.append((item["provider"], usd(item["input_per_mtok"]), usd(item["cached_input_per_mtok"]),
                           usd(item["output_per_mtok"]), usd(item["usd_per_request_500_in_100_out"], 4),
                           item.get("as_of") or "—"))
        out.append(s)
    return out


def _judgement_section(title: str, data: Mapping[str, Any] | None) -> Section | None:
    if not data:
        return None
    return Section(title, ("", ""), _flat_rows(data))


def _openness_section(p: Mapping[str, Any]) -> list[Section]:
    o = p.get("openness") or {}
    mof = o.get("mof") or {}
    osi = o.get("osi") or {}
    out = []
    if mof:
        s = Section(f"Model Openness Framework: {mof.get('label') or 'not classed'}",
                    ("component", "class", "present", "open license", "evidence"))
        for c in mof.get("components") or []:
            s.rows.append((c.get("name"), c.get("required_for"), _fact(c.get("present")),
                           _fact(c.get("open_license")), _fact(c.get("evidence"))))
        if mof.get("reason"):
            s.text.append(mof["reason"])
        if mof.get("missing_for_next_class"):
            s.text.append("Missing for the next class: " + ", ".join(mof["missing_for_next_class"]))
        out.append(s)
    if osi:
        s = Section(f"OSI Open Source AI Definition 1.0: {osi.get('verdict')}", ("requirement", "met", "evidence"))
        for item in osi.get("items") or []:
            s.rows.append((item.get("requirement"), _fact(item.get("met")) if item.get("met") is not None
                           else "unknown", _fact(item.get("evidence") or item.get("note"))))
        out.append(s)
    return out


def _usability_section(u: Mapping[str, Any] | None) -> Section | None:
    if not u:
        return None
    s = Section("Technical usability", ("", ""))
    for key, label in (("ui", "user interface"), ("developer_api", "developer API"),
                       ("third_party_api", "third-party APIs"), ("library", "library")):
        s.rows.append((label, _fact((u.get("interfaces") or {}).get(key))))
    ft = u.get("fine_tunability") or {}
    methods = ", ".join(ft.get("methods") or []) or "—"
    s.rows.append(("fine-tuning", f"locally: {_fact(ft.get('local'))} ({methods}); by API: {_fact(ft.get('api'))}; "
                                  f"derivatives: {_fact(ft.get('derivatives'))}"))
    lic = u.get("license") or {}
    if lic.get("stated"):
        s.rows.append(("license", f"{lic.get('name') or lic.get('id')} ({lic.get('family') or 'unknown family'}"
                                  f"{', OSI-approved' if lic.get('osi_approved') else ''})"))
        for line in lic.get("plain_language") or []:
            s.rows.append(("", line))
        if lic.get("url"):
            s.rows.append(("license text", lic["url"]))
    else:
        s.rows.append(("license", "no license stated: nothing is granted beyond what the law allows"))
    skill = u.get("technical_skill") or {}
    if skill.get("level"):
        s.rows.append(("technical skill", f"{skill['level']}: {skill.get('explanation') or ''}".strip()))
    if skill.get("self_host_level"):
        s.rows.append(("to self-host", f"{skill['self_host_level']}: {skill.get('self_host_explanation') or ''}"))
    return s


def profile_sections(p: Mapping[str, Any]) -> list[Section]:
    sections = [_model_section(p), *_resourcing_sections(p)]
    for section in (_usability_section(p.get("usability")), _judgement_section("Utility", p.get("utility"))):
        if section is not None:
            sections.append(section)
    sections.extend(_openness_section(p))
    if p.get("notes") or p.get("warnings"):
        sections.append(Section("Notes", text=[*p.get("notes", []), *(f"warning: {w}" for w in p.get("warnings", []))]))
    return sections


# ---------------------------------------------------------------------------------------------
# Output formats


def to_rich(sections: Sequence[Section]) -> list[Any]:
    from rich.table import Table
    from rich.text import Text

    out: list[Any] = []
    for s in sections:
        if s.columns:
            table = Table(title=s.title, title_justify="left", show_header=any(s.columns), expand=False)
            for column in s.columns:
                table.add_column(column, overflow="fold")
            for row in s.rows:
                table.add_row(*[str(c) for c in row])
            out.append(table)
        else:
            out.append(Text(s.title, style="bold"))
        for line in s.text:
            out.append(Text(line, style="dim"))
    return out


def _md_cell(value: str) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(sections: Sequence[Section], title: str | None = None) -> str:
    lines: list[str] = [f"# {title}", ""] if title else []
    for s in sections:
        lines += [f"## {s.title}", ""]
        if s.columns and s.rows:
            header = [c or " " for c in s.columns]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "---|" * len(header))
            for row in s.rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            lines.append("")
        for line in s.text:
            lines += [line, ""]
    return "\n".join(lines).rstrip() + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1b1b1b}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:.3rem .6rem;text-align:left;
vertical-align:top}th{background:#f3f3f3}h2{margin-top:2rem}p.note{color:#555}"""


def to_html(sections: Sequence[Section], title: str) -> str:
    e = html.escape
    parts = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{e(title)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    for s in sections:
        parts.append(f"<section><h2>{e(s.title)}</h2>")
        if s.columns and s.rows:
            parts.append("<table>")
            if any(s.columns):
                parts.append("<tr>" + "".join(f"<th>{e(c)}</th>" for c in s.columns) + "</tr>")
            for row in s.rows:
                parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
            parts.append("</table>")
        parts.extend(f'<p class="note">{e(line)}</p>' for line in s.text)
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False) + "\n"


__all__ = ["Section", "gb", "profile_sections", "to_html", "to_json", "to_markdown", "to_rich"]
