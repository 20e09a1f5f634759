"""Technical usability (section 4.2 of "Beyond Release"): who can technically use the release, and how.

`judge_usability` answers four questions from the card, the file list, the license and what
the caller computed about hardware:

- interfaces: is there a hosted UI, a developer API, third-party APIs; which library loads it;
- fine-tunability: can the weights be adapted locally (full, LoRA, QLoRA), is there a
  fine-tuning API, and what the license lets a derivative be;
- license: the terms in plain language, with "no license stated" as its own case;
- technical skill: the lowest skill that gets someone in (a hosted UI needs none), and the
  skill needed to host the weights, from `HardwareNeed`.

This module also holds the vocabulary the three judgements share (`utility` and `openness`
import it): `Source`, `Fact`, and the schema of the card's `access_profile:` overrides, through
which a releaser states or corrects anything judged here. Overrides are validated strictly
(`parse_overrides` raises `InvalidOverrides` naming every problem and the allowed keys); card
data is read leniently: a malformed card value is ignored, never a crash.

Pure: no I/O, no web or database imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from releasehub.access.licenses import ALLOWED, CONDITIONAL, FORBIDDEN, ResolvedLicense

# ---------------------------------------------------------------------------------------------
# Shared vocabulary

Source = Literal["releaser", "card", "config", "files", "license", "catalogue", "default"]
T = TypeVar("T")


class Fact(BaseModel, Generic[T]):
    """One judged value and where it came from; `evidence` is a file path, card key or URL."""

    model_config = ConfigDict(frozen=True)

    value: T
    source: Source
    evidence: str | None = None


MODALITIES = ("text", "code", "image", "audio", "video", "embedding")

# MOF component ids (see `openness`), and the other spellings accepted in overrides and in the
# catalogue (which says `intermediate_checkpoints`).
COMPONENT_IDS = (
    "model_architecture",
    "model_parameters",
    "technical_report",
    "evaluation_results",
    "model_card",
    "data_card",
    "sample_outputs",
    "training_code",
    "inference_code",
    "evaluation_code",
    "evaluation_data",
    "supporting_libraries",
    "research_paper",
    "datasets",
    "data_preprocessing_code",
    "intermediate_parameters",
)
COMPONENT_ALIASES: Mapping[str, str] = {
    "intermediate_checkpoints": "intermediate_parameters",
    "weights": "model_parameters",
    "parameters": "model_parameters",
    "architecture": "model_architecture",
    "sample_model_outputs": "sample_outputs",
    "preprocessing_code": "data_preprocessing_code",
}


def component_id(key: str) -> str | None:
    """The canonical MOF component id for a key, or None when it names no component."""
    key = key.strip().lower()
    key = COMPONENT_ALIASES.get(key, key)
    return key if key in COMPONENT_IDS else None


_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ),
        start=1,
    )
    for name in names
}
_MONTH_NAMES = (
    "january|february|march|april|may|june|july|august|september|october|november|december"
    "|jan|feb|mar|apr|jun|jul|aug|sept|sep|oct|nov|dec"
)
# A month with its year, written out ("December 2023", "Dec. 2023") or numerically ("2023-12", "2023/12").
MONTH_PATTERN = (
    rf"(?:\b(?:{_MONTH_NAMES})\.?,?\s+(?:19|20)\d\d\b"
    r"|\b(?:19|20)\d\d[-/](?:0[1-9]|1[0-2])(?:-(?:0[1-9]|[12]\d|3[01]))?\b)"
)


def normalise_month(text: Any) -> str | None:
    """'December 2023', 'Dec. 2023', '2023/12', '2023-12' -> '2023-12'; '2023-12-01' and '2023' are kept."""
    if isinstance(text, date):
        return text.isoformat()
    if not isinstance(text, str):
        return None
    value = text.strip().lower()
    if re.fullmatch(r"(?:19|20)\d\d(?:-(?:0[1-9]|1[0-2])(?:-(?:0[1-9]|[12]\d|3[01]))?)?", value):
        return value
    match = re.fullmatch(r"((?:19|20)\d\d)/(0[1-9]|1[0-2])", value)
    if match:
        return f"{match[1]}-{match[2]}"
    match = re.fullmatch(r"([a-z]+)\.?,?\s+((?:19|20)\d\d)", value)
    if match and match[1] in _MONTHS:
        return f"{match[2]}-{_MONTHS[match[1]]:02d}"
    return None


def markdown_body(card_text: Any) -> str:
    """The Markdown of a model card without its YAML front matter (callers may pass either)."""
    if not isinstance(card_text, str):
        return ""
    text = card_text.replace("\r\n", "\n")
    if text.startswith("---\n"):
        end = text.find("\n---", 3)
        if end != -1:
            newline = text.find("\n", end + 4)
            text = "" if newline == -1 else text[newline + 1 :]
    return text


def as_mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# ---------------------------------------------------------------------------------------------
# The `access_profile:` overrides


class InvalidOverrides(ValueError):
    """The card's `access_profile:` mapping does not follow the schema; the message lists every problem."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InterfaceOverrides(_Strict):
    """True/false, or the name or address of the interface (which means true)."""

    ui: bool | str | None = None
    developer_api: bool | str | None = None
    third_party_api: bool | str | list[str] | None = None


class FineTuningOverrides(_Strict):
    """`api`: a hosted fine-tuning API exists (true/false or its address); `weights`: local tuning works."""

    api: bool | str | None = None
    weights: bool | None = None


_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:[-_][a-z0-9]{2,8})*$", re.IGNORECASE)


def _as_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class AccessProfileOverrides(_Strict):
    """What a releaser may state in the card's `access_profile:` mapping. Every key is optional."""

    languages: list[str] | None = None
    modalities_in: list[Literal["text", "code", "image", "audio", "video", "embedding"]] | None = None
    modalities_out: list[Literal["text", "code", "image", "audio", "video", "embedding"]] | None = None
    context_length: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    knowledge_cutoff: str | None = None
    interfaces: InterfaceOverrides | None = None
    fine_tuning: FineTuningOverrides | None = None
    components: dict[str, bool | str] | None = None
    component_licenses: dict[str, str] | None = None

    @field_validator("languages", "modalities_in", "modalities_out", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [v.strip().lower() if isinstance(v, str) else v for v in value]
        return _as_list(value.strip().lower()) if isinstance(value, str) else value

    @field_validator("languages")
    @classmethod
    def _iso_codes(cls, value: list[str] | None) -> list[str] | None:
        bad = [v for v in value or () if not _LANGUAGE.match(v)]
        if bad:
            raise ValueError(
                f"{', '.join(map(repr, bad))} is not an ISO 639 language code (such as 'en', 'pt-br')"
            )
        return value

    @field_validator("knowledge_cutoff", mode="before")
    @classmethod
    def _month(cls, value: Any) -> Any:
        if value is None:
            return None
        month = normalise_month(value)
        if month is None:
            raise ValueError("give the knowledge cutoff as YYYY-MM, YYYY-MM-DD or 'December 2023'")
        return month

    @field_validator("components", "component_licenses", mode="before")
    @classmethod
    def _component_keys(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        out: dict[Any, Any] = {}
        for key, item in value.items():
            canonical = component_id(key) if isinstance(key, str) else None
            if canonical is None:
                allowed = ", ".join((*COMPONENT_IDS, *COMPONENT_ALIASES))
                raise ValueError(f"unknown component {key!r} (allowed: {allowed})")
            out[canonical] = item
        return out

    @field_validator("component_licenses")
    @classmethod
    def _license_ids(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # License ids are compared the way the card's `license:` is: lower-case, trimmed.
        return None if value is None else {key: item.strip().lower() for key, item in value.items()}


_NESTED: Mapping[str, type[BaseModel]] = {
    "interfaces": InterfaceOverrides,
    "fine_tuning": FineTuningOverrides,
}


def _describe(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    where = "access_profile" + "".join(f".{part}" for part in loc)
    if error.get("type") == "extra_forbidden":
        parent = loc[0] if len(loc) > 1 else None
        model = _NESTED.get(parent, AccessProfileOverrides) if parent else AccessProfileOverrides
        return f"unknown key {where!r} (allowed: {', '.join(model.model_fields)})"
    message = str(error.get("msg", "is not valid")).removeprefix("Value error, ")
    return f"{where}: {message}"


def parse_overrides(raw: Mapping[str, Any] | AccessProfileOverrides | None) -> AccessProfileOverrides:
    """Validate the card's `access_profile:` mapping; InvalidOverrides lists every problem."""
    if isinstance(raw, AccessProfileOverrides):
        return raw
    if raw is None:
        return AccessProfileOverrides()
    if not isinstance(raw, Mapping):
        raise InvalidOverrides(
            f"README.md: access_profile must be a mapping of keys "
            f"({', '.join(AccessProfileOverrides.model_fields)}), not {type(raw).__name__}."
        )
    try:
        return AccessProfileOverrides.model_validate(dict(raw))
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors())
        raise InvalidOverrides(
            f"README.md: access_profile is not valid: {problems}. Fix these keys in the card's YAML header."
        ) from None


def _interface_fact(value: Any, source: Source, key: str) -> Fact[bool | None] | None:
    """An interface statement (bool, name/URL or list of providers) as a fact; None if it states nothing."""
    if isinstance(value, bool):
        return Fact[bool | None](value=value, source=source, evidence=key)
    if isinstance(value, str) and value.strip():
        return Fact[bool | None](value=True, source=source, evidence=value.strip())
    if isinstance(value, list):
        names = [v.strip() for v in value if isinstance(v, str) and v.strip()]
        return Fact[bool | None](value=bool(names), source=source, evidence=", ".join(names) or key)
    return None


# ---------------------------------------------------------------------------------------------
# Results


class HardwareNeed(BaseModel):
    """What serving the weights takes, computed by the caller from memory needs.

    `gpus` counts accelerators of kind `gpu` in all, over `nodes` machines; `fits_consumer_gpu`
    and `fits_laptop` say whether one consumer GPU or a laptop's memory is enough.
    """

    model_config = ConfigDict(frozen=True)

    gpu: str
    gpus: int = Field(ge=0)
    nodes: int = Field(ge=1)
    fits_consumer_gpu: bool
    fits_laptop: bool


class Interfaces(BaseModel):
    model_config = ConfigDict(frozen=True)

    ui: Fact[bool | None]
    developer_api: Fact[bool | None]
    third_party_api: Fact[bool | None]
    library: Fact[str | None]
    pipeline_tag: Fact[str | None]


Permission = Literal["allowed", "conditional", "forbidden", "not granted", "unknown"]


class FineTunability(BaseModel):
    """`local`: the weights can be adapted on one's own hardware (`methods` says how);
    `api`: a hosted fine-tuning API; `derivatives`: what the license lets a fine-tuned model be."""

    model_config = ConfigDict(frozen=True)

    local: Fact[bool | None]
    methods: list[str]
    api: Fact[bool | None]
    derivatives: Fact[Permission]
    derivative_naming: str | None
    note: str


class LicenseInfo(BaseModel):
    """The license in plain language. `stated` is False when the card names none."""

    model_config = ConfigDict(frozen=True)

    stated: bool
    known: bool
    id: str | None
    name: str
    family: str | None
    url: str | None
    osi_approved: bool | None
    commercial_use: Permission
    redistribution: Permission
    train_on_outputs: Permission
    user_threshold: int | None
    field_of_use_restrictions: list[str]
    attribution: str | None
    derivative_naming: str | None
    summary: str
    plain_language: list[str]
    source: Source


SkillLevel = Literal[
    "no-code (hosted UI)",
    "developer (API)",
    "hobbyist (consumer GPU or laptop)",
    "practitioner (one data-centre GPU)",
    "infrastructure team (multi-GPU node)",
    "cluster operator (several nodes)",
]


class TechnicalSkill(BaseModel):
    """`level`: the lowest skill that gets someone using the model at all (None: no known way in).
    `self_host_level`: the skill needed to host the weights, when they are released and sized."""

    model_config = ConfigDict(frozen=True)

    level: SkillLevel | None
    explanation: str
    self_host_level: SkillLevel | None
    self_host_explanation: str | None


class Usability(BaseModel):
    model_config = ConfigDict(frozen=True)

    interfaces: Interfaces
    fine_tunability: FineTunability
    license: LicenseInfo
    technical_skill: TechnicalSkill


# ---------------------------------------------------------------------------------------------
# Interfaces

_SPACES_LINK = re.compile(r"https?://huggingface\.co/spaces/[\w.-]+/[\w.-]+", re.IGNORECASE)
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf")


def _library_from_files(files: Mapping[str, int]) -> Fact[str | None]:
    names = {path.rsplit("/", 1)[-1].lower(): path for path in sorted(files)}
    for marker, library in (
        ("adapter_config.json", "peft"),
        ("model_index.json", "diffusers"),
        ("config_sentence_transformers.json", "sentence-transformers"),
    ):
        if marker in names:
            return Fact[str | None](value=library, source="files", evidence=names[marker])
    if "config.json" in names and any(n.endswith((".safetensors", ".bin")) for n in names):
        return Fact[str | None](value="transformers", source="files", evidence=names["config.json"])
    gguf = next((path for name, path in names.items() if name.endswith(".gguf")), None)
    if gguf is not None:
        return Fact[str | None](value="gguf", source="files", evidence=gguf)
    return Fact[str | None](value=None, source="default")


def _interfaces(
    files: Mapping[str, int],
    card: Mapping[str, Any],
    body: str,
    overrides: AccessProfileOverrides,
    catalogue: Mapping[str, Any],
) -> Interfaces:
    stated = overrides.interfaces or InterfaceOverrides()
    listed = as_mapping(catalogue.get("interfaces"))
    facts: dict[str, Fact[bool | None]] = {}
    for key in ("ui", "developer_api", "third_party_api"):
        fact = _interface_fact(getattr(stated, key), "releaser", f"access_profile.interfaces.{key}")
        if fact is None and key in listed:
            # The catalogue is curated: an interface it leaves empty is one the model does not have.
            fact = _interface_fact(listed[key], "catalogue", f"interfaces.{key}") or Fact[bool | None](
                value=False, source="catalogue", evidence=f"interfaces.{key}"
            )
        if fact is None and key == "ui":
            space = _SPACES_LINK.search(body)
            if space:
                fact = Fact[bool | None](value=True, source="card", evidence=space[0])
        facts[key] = fact or Fact[bool | None](value=None, source="default")
    library = card.get("library_name")
    library_fact = (
        Fact[str | None](value=library.strip(), source="card", evidence="library_name")
        if isinstance(library, str) and library.strip()
        else _library_from_files(files)
    )
    tag = card.get("pipeline_tag")
    tag_fact = (
        Fact[str | None](value=tag.strip(), source="card", evidence="pipeline_tag")
        if isinstance(tag, str) and tag.strip()
        else Fact[str | None](value=None, source="default")
    )
    return Interfaces(**facts, library=library_fact, pipeline_tag=tag_fact)


# ---------------------------------------------------------------------------------------------
# License


_PERMISSIONS: Mapping[str, Permission] = {
    ALLOWED: "allowed",
    CONDITIONAL: "conditional",
    FORBIDDEN: "forbidden",
}


def _permission(value: str) -> Permission:
    return _PERMISSIONS.get(value, "unknown")


def _undescribed(license: ResolvedLicense, *, stated: bool, name: str, family: str | None, granted: Permission,
                 summary: str, source: Source) -> LicenseInfo:
    """A license the catalogue cannot describe (none stated, or one it does not know): no terms."""
    return LicenseInfo(stated=stated, known=False, id=license.id, name=name, family=family, url=license.link,
                       osi_approved=None, commercial_use=granted, redistribution=granted, train_on_outputs=granted,
                       user_threshold=None, field_of_use_restrictions=[], attribution=None, derivative_naming=None,
                       summary=summary, plain_language=[summary], source=source)


def _license_info(license: ResolvedLicense) -> LicenseInfo:
    terms = license.terms
    if license.id is None:
        summary = (
            "No license stated: the card names none, so no permission to use, change or share the "
            "model is granted beyond what the law allows anyway. Ask the releaser for a license before "
            "relying on it."
        )
        return _undescribed(license, stated=False, name="no license stated", family=None, granted="not granted",
                            summary=summary, source="default")
    if terms is None or terms.id == "other":
        name = license.name or license.id
        where = f" at {license.link}" if license.link else ""
        summary = (
            f"The card names {name!r}, which releasehub's license catalogue does not describe: "
            f"read its text{where} before using the model."
        )
        return _undescribed(license, stated=True, name=name, family="other" if terms else None, granted="unknown",
                            summary=summary, source="license")
    plain = [
        f"Commercial use: {terms.commercial_use}.",
        f"Redistribution: {terms.redistribution}.",
        f"Training other models on its outputs: {terms.train_on_outputs}.",
    ]
    if terms.user_threshold is not None:
        plain.append(f"Above {terms.user_threshold:,} monthly active users a separate license is needed.")
    if terms.field_of_use_restrictions:
        plain.append(
            f"Use is restricted: {len(terms.field_of_use_restrictions)} field-of-use restrictions apply."
        )
    if terms.derivative_naming:
        plain.append(f"Derivative naming: {terms.derivative_naming}")
    if terms.attribution:
        plain.append(f"Attribution: {terms.attribution}")
    plain.append("OSI-approved." if terms.osi_approved else "Not an OSI-approved license.")
    return LicenseInfo(
        stated=True,
        known=True,
        id=terms.id,
        name=license.name or terms.name,
        family=terms.family,
        url=license.link or terms.url,
        osi_approved=terms.osi_approved,
        commercial_use=_permission(terms.commercial_use),
        redistribution=_permission(terms.redistribution),
        train_on_outputs=_permission(terms.train_on_outputs),
        user_threshold=terms.user_threshold,
        field_of_use_restrictions=list(terms.field_of_use_restrictions),
        attribution=terms.attribution,
        derivative_naming=terms.derivative_naming,
        summary=terms.summary,
        plain_language=plain,
        source="license",
    )


def _derivatives(info: LicenseInfo) -> Fact[Permission]:
    evidence = info.id
    if not info.stated:
        return Fact[Permission](value="not granted", source="default", evidence=None)
    if not info.known:
        return Fact[Permission](value="unknown", source="license", evidence=evidence)
    if info.osi_approved and not info.field_of_use_restrictions and info.redistribution == ALLOWED:
        value: Permission = "allowed"
    elif info.redistribution == FORBIDDEN:
        value = "forbidden"
    elif info.family == "permissive" and info.redistribution == ALLOWED:
        value = "allowed"
    else:
        value = "conditional"
    return Fact[Permission](value=value, source="license", evidence=evidence)


# ---------------------------------------------------------------------------------------------
# Fine-tuning


def _fine_tunability(
    files: Mapping[str, int],
    overrides: AccessProfileOverrides,
    catalogue: Mapping[str, Any],
    weights_available: bool,
    info: LicenseInfo,
) -> FineTunability:
    stated = overrides.fine_tuning or FineTuningOverrides()
    listed = as_mapping(catalogue.get("fine_tuning"))
    weights = sorted(path for path in files if path.lower().endswith(_WEIGHT_SUFFIXES))
    if stated.weights is not None:
        local = Fact[bool | None](
            value=stated.weights, source="releaser", evidence="access_profile.fine_tuning.weights"
        )
    elif weights:
        local = Fact[bool | None](value=weights_available, source="files", evidence=weights[0])
    elif isinstance(listed.get("weights"), bool):
        local = Fact[bool | None](value=listed["weights"], source="catalogue", evidence="fine_tuning.weights")
    else:
        local = Fact[bool | None](value=weights_available, source="default")
    api = (
        _interface_fact(stated.api, "releaser", "access_profile.fine_tuning.api")
        or _interface_fact(listed.get("api"), "catalogue", "fine_tuning.api")
        or Fact[bool | None](value=None, source="default")
    )
    methods = ["full fine-tuning", "LoRA", "QLoRA"] if local.value else []
    notes = []
    if local.value:
        notes.append("The weights can be adapted locally (full fine-tuning, or LoRA/QLoRA on less memory).")
        if weights and all(path.lower().endswith(".gguf") for path in weights):
            notes.append("Only GGUF files are here: fine-tune from the unquantised checkpoint.")
    else:
        notes.append(
            "The weights cannot be adapted locally."
            if local.value is False
            else "Whether the weights can be adapted locally is unknown."
        )
    if api.value:
        notes.append("A hosted fine-tuning API exists.")
    derivatives = _derivatives(info)
    notes.append(
        {
            "allowed": "The license lets fine-tuned models be shared freely.",
            "conditional": "The license lets fine-tuned models be shared under conditions.",
            "forbidden": "The license forbids sharing fine-tuned models.",
            "not granted": "With no license stated, sharing a fine-tuned model is not permitted.",
            "unknown": "Read the license to learn what a fine-tuned model may be.",
        }[derivatives.value]
    )
    return FineTunability(
        local=local,
        methods=methods,
        api=api,
        derivatives=derivatives,
        derivative_naming=info.derivative_naming,
        note=" ".join(notes),
    )


# ---------------------------------------------------------------------------------------------
# Technical skill


def _self_host(hardware: HardwareNeed) -> tuple[SkillLevel, str]:
    gpus = max(hardware.gpus, 1)
    if hardware.nodes > 1:
        return (
            "cluster operator (several nodes)",
            (
                f"Hosting the weights takes {gpus} x {hardware.gpu} over {hardware.nodes} nodes: multi-node "
                "serving, a cluster operator's job."
            ),
        )
    if gpus > 1:
        return (
            "infrastructure team (multi-GPU node)",
            (
                f"Hosting the weights takes {gpus} x {hardware.gpu} in one node: tensor-parallel serving, "
                "an infrastructure team's job."
            ),
        )
    if hardware.fits_laptop or hardware.fits_consumer_gpu:
        where = (
            "a laptop or one consumer GPU"
            if hardware.fits_laptop and hardware.fits_consumer_gpu
            else "a laptop"
            if hardware.fits_laptop
            else "one consumer GPU"
        )
        return (
            "hobbyist (consumer GPU or laptop)",
            f"The weights run on {where}: a hobbyist can host them with a local runtime.",
        )
    return (
        "practitioner (one data-centre GPU)",
        f"Hosting the weights takes one {hardware.gpu}: a practitioner with a data-centre GPU can run them.",
    )


def _technical_skill(
    interfaces: Interfaces, weights_available: bool, hardware: HardwareNeed | None
) -> TechnicalSkill:
    self_level: SkillLevel | None = None
    self_text: str | None = None
    if weights_available and hardware is not None:
        self_level, self_text = _self_host(hardware)
    elif weights_available:
        self_text = "The weights are released, but what hardware they need is unknown."
    if interfaces.ui.value:
        return TechnicalSkill(
            level="no-code (hosted UI)",
            explanation=f"No code needed: a hosted UI exists ({interfaces.ui.evidence}).",
            self_host_level=self_level,
            self_host_explanation=self_text,
        )
    if interfaces.developer_api.value or interfaces.third_party_api.value:
        which = interfaces.developer_api if interfaces.developer_api.value else interfaces.third_party_api
        return TechnicalSkill(
            level="developer (API)",
            explanation=f"Calling a hosted API takes basic programming ({which.evidence}).",
            self_host_level=self_level,
            self_host_explanation=self_text,
        )
    if self_level is not None and self_text is not None:
        return TechnicalSkill(
            level=self_level,
            explanation=self_text,
            self_host_level=self_level,
            self_host_explanation=self_text,
        )
    explanation = self_text or (
        "No way in is known: the weights are not released and no hosted UI or API is "
        "stated (a releaser can state one in access_profile.interfaces)."
    )
    return TechnicalSkill(
        level=None, explanation=explanation, self_host_level=None, self_host_explanation=self_text
    )


# ---------------------------------------------------------------------------------------------


def judge_usability(
    files: Mapping[str, int],
    card: Mapping[str, Any] | None,
    card_text: str | None,
    license: ResolvedLicense,
    overrides: Mapping[str, Any] | AccessProfileOverrides | None,
    *,
    weights_available: bool,
    hardware: HardwareNeed | None,
    catalogue_card: Mapping[str, Any] | None = None,
) -> Usability:
    """Technical usability of a release. Raises InvalidOverrides for a malformed `access_profile`."""
    stated = parse_overrides(overrides)
    catalogue = as_mapping(catalogue_card)
    interfaces = _interfaces(files, as_mapping(card), markdown_body(card_text), stated, catalogue)
    info = _license_info(license)
    return Usability(
        interfaces=interfaces,
        fine_tunability=_fine_tunability(files, stated, catalogue, weights_available, info),
        license=info,
        technical_skill=_technical_skill(interfaces, weights_available, hardware),
    )


__all__ = [
    "COMPONENT_ALIASES",
    "COMPONENT_IDS",
    "MODALITIES",
    "AccessProfileOverrides",
    "Fact",
    "FineTunability",
    "FineTuningOverrides",
    "HardwareNeed",
    "InterfaceOverrides",
    "Interfaces",
    "InvalidOverrides",
    "LicenseInfo",
    "Permission",
    "SkillLevel",
    "Source",
    "TechnicalSkill",
    "Usability",
    "component_id",
    "judge_usability",
    "markdown_body",
    "normalise_month",
    "parse_overrides",
]
