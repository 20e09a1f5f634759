"""Utility (section 4.3 of "Beyond Release"): what populations can get out of the model's capabilities.

`judge_utility` states, each as a `Fact` with its source, the languages, input and output
modalities, context length, maximum output and knowledge cutoff. Task performance is not
judged here (the paper leaves it out of access too).

Where each comes from, first hit wins:

- languages: `access_profile.languages`, card `language:`, catalogue;
- modalities: `access_profile.modalities_in`/`_out`, card `pipeline_tag` with config hints
  (`vision_config`, `audio_config`) or config/GGUF alone, catalogue;
- context length: `access_profile.context_length`, config (YaRN-scaled when that is longer),
  GGUF `{arch}.context_length`, catalogue;
- maximum output: `access_profile.max_output_tokens`, catalogue, card text;
- knowledge cutoff: `access_profile.knowledge_cutoff`, catalogue, card YAML
  `knowledge_cutoff`, card text.

Card text is searched with narrow patterns ("knowledge cutoff: 2023-12", "a cutoff of December
2023", a "Knowledge cutoff" table column); a miss leaves the fact unknown rather than guessed.

Pure: no I/O, no web or database imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from numbers import Integral, Real
from typing import Any

from pydantic import BaseModel, ConfigDict

from .usability import (
    MONTH_PATTERN,
    AccessProfileOverrides,
    Fact,
    as_mapping,
    markdown_body,
    normalise_month,
    parse_overrides,
)

Languages = Fact[list[str] | None]
Modalities = Fact[list[str] | None]
Count = Fact[int | None]
Month = Fact[str | None]


class Utility(BaseModel):
    """`knowledge_cutoff` is YYYY-MM (or YYYY-MM-DD when stated so); counts are tokens."""

    model_config = ConfigDict(frozen=True)

    languages: Languages
    modalities_in: Modalities
    modalities_out: Modalities
    context_length: Count
    max_output_tokens: Count
    knowledge_cutoff: Month


# ---------------------------------------------------------------------------------------------
# Languages

_CODE = re.compile(r"^[a-z]{2,3}(?:[-_][a-z0-9]{2,8})*$")


def _codes(value: Any) -> list[str]:
    """ISO codes from a card's `language:` (a string or a list), dropping others ('multilingual')."""
    values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
    out: list[str] = []
    for item in values:
        if isinstance(item, str) and _CODE.match(item.strip().lower()) and item.strip().lower() not in out:
            out.append(item.strip().lower())
    return out


def _languages(
    card: Mapping[str, Any], stated: AccessProfileOverrides, catalogue: Mapping[str, Any]
) -> Languages:
    if stated.languages:
        return Languages(value=list(stated.languages), source="releaser", evidence="access_profile.languages")
    codes = _codes(card.get("language"))
    if codes:
        return Languages(value=codes, source="card", evidence="language")
    codes = _codes(catalogue.get("languages"))
    if codes:
        return Languages(value=codes, source="catalogue", evidence="languages")
    return Languages(value=None, source="default")


# ---------------------------------------------------------------------------------------------
# Modalities

_ORDER = ("text", "code", "image", "audio", "video", "embedding")
# Hub pipeline tags -> (inputs, outputs). Tags that classify or detect have no generative output
# modality and are left out, so the modalities stay unknown rather than wrong.
PIPELINE_MODALITIES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "text-generation": (("text",), ("text",)),
    "text2text-generation": (("text",), ("text",)),
    "summarization": (("text",), ("text",)),
    "translation": (("text",), ("text",)),
    "conversational": (("text",), ("text",)),
    "image-text-to-text": (("text", "image"), ("text",)),
    "visual-question-answering": (("text", "image"), ("text",)),
    "document-question-answering": (("text", "image"), ("text",)),
    "video-text-to-text": (("text", "video"), ("text",)),
    "audio-text-to-text": (("text", "audio"), ("text",)),
    "image-to-text": (("image",), ("text",)),
    "automatic-speech-recognition": (("audio",), ("text",)),
    "text-to-speech": (("text",), ("audio",)),
    "text-to-audio": (("text",), ("audio",)),
    "audio-to-audio": (("audio",), ("audio",)),
    "text-to-image": (("text",), ("image",)),
    "image-to-image": (("image", "text"), ("image",)),
    "text-to-video": (("text",), ("video",)),
    "image-to-video": (("image", "text"), ("video",)),
    "feature-extraction": (("text",), ("embedding",)),
    "sentence-similarity": (("text",), ("embedding",)),
}
_CONFIG_INPUTS = (("vision_config", "image"), ("audio_config", "audio"))


def _ordered(values: set[str]) -> list[str]:
    return [m for m in _ORDER if m in values]


def _observed_modalities(
    card: Mapping[str, Any], config: Mapping[str, Any], gguf: Mapping[str, Any]
) -> tuple[Modalities, Modalities] | None:
    tag = card.get("pipeline_tag")
    hints = [(key, modality) for key, modality in _CONFIG_INPUTS if isinstance(config.get(key), Mapping)]
    if isinstance(tag, str) and tag.strip().lower() in PIPELINE_MODALITIES:
        ins, outs = PIPELINE_MODALITIES[tag.strip().lower()]
        inputs = set(ins) | {modality for _, modality in hints}
        evidence = f"pipeline_tag: {tag.strip()}" + "".join(f"; config.json {key}" for key, _ in hints)
        return (
            Modalities(value=_ordered(inputs), source="card", evidence=evidence),
            Modalities(value=list(outs), source="card", evidence=f"pipeline_tag: {tag.strip()}"),
        )
    architectures = config.get("architectures")
    names = [a for a in architectures if isinstance(a, str)] if isinstance(architectures, list) else []
    causal = any(a.endswith(("ForCausalLM", "ForConditionalGeneration")) for a in names)
    if causal or hints:
        evidence = "config.json " + ", ".join([*names[:1], *(key for key, _ in hints)])
        return (
            Modalities(
                value=_ordered({"text"} | {modality for _, modality in hints}),
                source="config",
                evidence=evidence,
            ),
            Modalities(value=["text"], source="config", evidence=evidence),
        )
    arch = gguf.get("general.architecture")
    if isinstance(arch, str) and arch and arch != "clip":
        evidence = f"GGUF general.architecture: {arch}"
        return (
            Modalities(value=["text"], source="files", evidence=evidence),
            Modalities(value=["text"], source="files", evidence=evidence),
        )
    return None


def _catalogue_modalities(catalogue: Mapping[str, Any], key: str) -> Modalities | None:
    values = catalogue.get(key)
    if isinstance(values, list):
        found = _ordered({v for v in values if isinstance(v, str)})
        if found:
            return Modalities(value=found, source="catalogue", evidence=key)
    return None


def _modalities(
    card: Mapping[str, Any],
    config: Mapping[str, Any],
    gguf: Mapping[str, Any],
    stated: AccessProfileOverrides,
    catalogue: Mapping[str, Any],
) -> tuple[Modalities, Modalities]:
    observed = _observed_modalities(card, config, gguf)
    out: list[Modalities] = []
    for index, key in enumerate(("modalities_in", "modalities_out")):
        given = getattr(stated, key)
        if given:
            out.append(
                Modalities(value=_ordered(set(given)), source="releaser", evidence=f"access_profile.{key}")
            )
        elif observed is not None:
            out.append(observed[index])
        else:
            out.append(_catalogue_modalities(catalogue, key) or Modalities(value=None, source="default"))
    return out[0], out[1]


# ---------------------------------------------------------------------------------------------
# Context length

_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def _count(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, Integral):
        return None
    return int(value) if int(value) > 0 else None


def _factor(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, Real):
        return None
    return float(value) if float(value) > 0 else None


def _rope(section: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]]:
    """`rope_scaling`, or transformers 5's `rope_parameters` (possibly one per layer type), with its key."""
    key = "rope_scaling" if as_mapping(section.get("rope_scaling")) else "rope_parameters"
    rope = as_mapping(section.get(key))
    if rope and not (rope.get("rope_type") or rope.get("type")) and as_mapping(rope.get("full_attention")):
        return f"{key}.full_attention", as_mapping(rope.get("full_attention"))
    return key, rope


def _context_from_config(config: Mapping[str, Any]) -> Count | None:
    for prefix, section in (
        ("", config),
        ("text_config.", as_mapping(config.get("text_config"))),
        ("llm_config.", as_mapping(config.get("llm_config"))),
    ):
        key = next((k for k in _POSITION_KEYS if _count(section.get(k)) is not None), None)
        if key is None:
            continue
        base = int(section[key])
        rope_key, rope = _rope(section)
        kind = str(rope.get("rope_type") or rope.get("type") or "").lower()
        factor = _factor(rope.get("factor"))
        if kind == "yarn" and factor is not None:
            original = _count(rope.get("original_max_position_embeddings")) or base
            scaled = int(original * factor)
            if scaled > base:
                return Count(
                    value=scaled,
                    source="config",
                    evidence=f"config.json {prefix}{rope_key}: YaRN factor {factor:g} x "
                    f"original_max_position_embeddings {original} ({prefix}{key} {base})",
                )
        return Count(value=base, source="config", evidence=f"config.json {prefix}{key}")
    return None


def _context_from_gguf(gguf: Mapping[str, Any]) -> Count | None:
    arch = gguf.get("general.architecture")
    if not isinstance(arch, str) or not arch:
        return None
    key = f"{arch}.context_length"
    base = _count(gguf.get(key))
    if base is None:
        return None
    kind = gguf.get(f"{arch}.rope.scaling.type")
    factor = _factor(gguf.get(f"{arch}.rope.scaling.factor"))
    original = _count(gguf.get(f"{arch}.rope.scaling.original_context_length"))
    if kind == "yarn" and factor is not None and original is not None and int(original * factor) > base:
        return Count(
            value=int(original * factor),
            source="files",
            evidence=f"GGUF {arch}.rope.scaling: YaRN factor {factor:g} x original {original}",
        )
    return Count(value=base, source="files", evidence=f"GGUF {key}")


def _context_length(
    config: Mapping[str, Any],
    gguf: Mapping[str, Any],
    stated: AccessProfileOverrides,
    catalogue: Mapping[str, Any],
) -> Count:
    if stated.context_length is not None:
        return Count(value=stated.context_length, source="releaser", evidence="access_profile.context_length")
    found = _context_from_config(config) or _context_from_gguf(gguf)
    if found is not None:
        return found
    listed = _count(catalogue.get("context_length"))
    if listed is not None:
        return Count(value=listed, source="catalogue", evidence="context_length")
    return Count(value=None, source="default")


# ---------------------------------------------------------------------------------------------
# Maximum output and knowledge cutoff, from the card text

_MAX_OUTPUT = re.compile(
    r"max(?:imum)?\.?\s+(?:output|generation|generated|new)\s+(?:length|tokens?)\b[^.\n]{0,30}?"
    r"(\d{1,3}(?:,\d{3})+|\d+)\s*(k\b)?",
    re.IGNORECASE,
)
_CUTOFF = re.compile(r"cut-?\s?off\b[^.\n]{0,40}?(" + MONTH_PATTERN + r")", re.IGNORECASE)
_CUTOFF_HEADER = re.compile(r"(knowledge|data|training)?\s*cut-?\s?off", re.IGNORECASE)


def _max_output_from_text(body: str) -> Count | None:
    match = _MAX_OUTPUT.search(body)
    if match is None:
        return None
    tokens = int(match[1].replace(",", "")) * (1024 if match[2] else 1)
    return Count(value=tokens, source="card", evidence=match[0].strip()) if tokens > 0 else None


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _cutoff_from_table(body: str) -> Month | None:
    """The first data row of a Markdown table with a "Knowledge cutoff" column (Llama cards have one)."""
    lines = body.split("\n")
    for index, line in enumerate(lines[:-2]):
        if not line.lstrip().startswith("|") or not re.match(r"^\s*\|?[\s:|-]+$", lines[index + 1]):
            continue
        header = _cells(line)
        column = next((i for i, cell in enumerate(header) if _CUTOFF_HEADER.search(cell)), None)
        if column is None:
            continue
        row = _cells(lines[index + 2])
        if column < len(row):
            match = re.search(MONTH_PATTERN, row[column], re.IGNORECASE)
            month = normalise_month(match[0]) if match else None
            if month is not None:
                return Month(
                    value=month, source="card", evidence=f"table column {header[column]!r}: {row[column]}"
                )
    return None


def _cutoff_from_text(body: str) -> Month | None:
    match = _CUTOFF.search(body)
    if match is not None:
        month = normalise_month(match[1])
        if month is not None:
            return Month(value=month, source="card", evidence=match[0].strip())
    return _cutoff_from_table(body)


def _max_output(body: str, stated: AccessProfileOverrides, catalogue: Mapping[str, Any]) -> Count:
    if stated.max_output_tokens is not None:
        return Count(
            value=stated.max_output_tokens, source="releaser", evidence="access_profile.max_output_tokens"
        )
    listed = _count(catalogue.get("max_output_tokens"))
    if listed is not None:
        return Count(value=listed, source="catalogue", evidence="max_output_tokens")
    return _max_output_from_text(body) or Count(value=None, source="default")


def _knowledge_cutoff(
    card: Mapping[str, Any], body: str, stated: AccessProfileOverrides, catalogue: Mapping[str, Any]
) -> Month:
    if stated.knowledge_cutoff is not None:
        return Month(
            value=stated.knowledge_cutoff, source="releaser", evidence="access_profile.knowledge_cutoff"
        )
    listed = normalise_month(catalogue.get("knowledge_cutoff"))
    if listed is not None:
        return Month(value=listed, source="catalogue", evidence="knowledge_cutoff")
    in_card = normalise_month(card.get("knowledge_cutoff"))
    if in_card is not None:
        return Month(value=in_card, source="card", evidence="knowledge_cutoff")
    return _cutoff_from_text(body) or Month(value=None, source="default")


# ---------------------------------------------------------------------------------------------


def judge_utility(
    card: Mapping[str, Any] | None,
    card_text: str | None,
    config: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | AccessProfileOverrides | None,
    *,
    gguf_metadata: Mapping[str, Any] | None = None,
    catalogue_card: Mapping[str, Any] | None = None,
) -> Utility:
    """Utility facts of a release. Raises InvalidOverrides for a malformed `access_profile`."""
    stated = parse_overrides(overrides)
    card_data, config_data = as_mapping(card), as_mapping(config)
    gguf, catalogue = as_mapping(gguf_metadata), as_mapping(catalogue_card)
    body = markdown_body(card_text)
    modalities_in, modalities_out = _modalities(card_data, config_data, gguf, stated, catalogue)
    return Utility(
        languages=_languages(card_data, stated, catalogue),
        modalities_in=modalities_in,
        modalities_out=modalities_out,
        context_length=_context_length(config_data, gguf, stated, catalogue),
        max_output_tokens=_max_output(body, stated, catalogue),
        knowledge_cutoff=_knowledge_cutoff(card_data, body, stated, catalogue),
    )


__all__ = ["PIPELINE_MODALITIES", "Utility", "judge_utility"]
