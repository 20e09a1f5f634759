"""Openness: the Model Openness Framework class and the OSI Open Source AI Definition checklist.

Model Openness Framework (MOF; White et al. 2024, arXiv:2403.13784). A class needs every
component it lists, each released under an open license of the right kind:

- Class III, Open Model: model architecture, final parameters, technical report, evaluation
  results, model card, data card, sample model outputs;
- Class II, Open Tooling: adds training, inference and evaluation code, evaluation data,
  supporting libraries and tools;
- Class I, Open Science: adds research paper, datasets, data preprocessing code, intermediate
  parameters.

Code needs an OSI-approved license; parameters one of `OPEN_PARAMETER_LICENSES`; data and
documentation one of `OPEN_CONTENT_LICENSES`. A license with field-of-use restrictions (Llama,
Gemma, OpenRAIL) is never open here. The card's `license:` (its first id) covers every
component unless `access_profile.component_licenses` names another.

OSI Open Source AI Definition 1.0: the four freedoms (use for any purpose without asking, study,
modify, share) and the preferred form for modification (data information, the complete code,
the parameters), each a `CheckItem` whose `met` is True, False or None (cannot tell). A
component the repo does not show is "cannot tell" (it may be published elsewhere) unless the
releaser or the catalogue says it is not released; missing parameters always fail.

Components are found in the file list, `config.json`, the card's YAML (`model-index`,
`datasets`, `arxiv:` tags) and Markdown (arXiv links, github.com links in sections about
training, inference or evaluation, an evaluation table, a training-data section), the
releaser's `access_profile.components`, and the catalogue's `components`. File contents are
never read: a data card counts by its presence.

Pure: no I/O, no web or database imports.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from releasehub.access.licenses import ALLOWED, ResolvedLicense, get_license

from .usability import (
    AccessProfileOverrides,
    Source,
    as_mapping,
    component_id,
    markdown_body,
    parse_overrides,
)

MOFClass = Literal["I", "II", "III"]
Kind = Literal["code", "parameters", "content"]

OPEN_PARAMETER_LICENSES = frozenset(
    {"apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "cc0-1.0", "openmdw", "openmdw-1.0"}
)
OPEN_CONTENT_LICENSES = frozenset(
    "cc-by-4.0 cc-by-sa-4.0 cc0-1.0 cdla-permissive-2.0 odc-by odc-by-1.0 apache-2.0 mit".split()
)
# OSI-approved licenses the license catalogue does not describe (the catalogue's own flag wins).
_OSI_APPROVED_EXTRA = frozenset(
    "bsd-2-clause isc mpl-2.0 lgpl-2.1 lgpl-3.0 gpl-2.0 agpl-3.0 epl-2.0 bsl-1.0 "
    "unlicense zlib artistic-2.0 afl-3.0 ecl-2.0 osl-3.0 upl-1.0 0bsd".split()
)

LABELS: Mapping[str, str] = {
    "I": "Class I — Open Science",
    "II": "Class II — Open Tooling",
    "III": "Class III — Open Model",
}
_RANK: Mapping[str, int] = {"III": 1, "II": 2, "I": 3}
_NEXT: Mapping[str | None, MOFClass | None] = {None: "III", "III": "II", "II": "I", "I": None}


@dataclass(frozen=True)
class _Spec:
    id: str
    name: str
    required_for: MOFClass
    kind: Kind


COMPONENTS: tuple[_Spec, ...] = (
    _Spec("model_architecture", "Model architecture", "III", "code"),
    _Spec("model_parameters", "Model parameters (final)", "III", "parameters"),
    _Spec("technical_report", "Technical report", "III", "content"),
    _Spec("evaluation_results", "Evaluation results", "III", "content"),
    _Spec("model_card", "Model card", "III", "content"),
    _Spec("data_card", "Data card", "III", "content"),
    _Spec("sample_outputs", "Sample model outputs", "III", "content"),
    _Spec("training_code", "Training code", "II", "code"),
    _Spec("inference_code", "Inference code", "II", "code"),
    _Spec("evaluation_code", "Evaluation code", "II", "code"),
    _Spec("evaluation_data", "Evaluation data", "II", "content"),
    _Spec("supporting_libraries", "Supporting libraries and tools", "II", "code"),
    _Spec("research_paper", "Research paper", "I", "content"),
    _Spec("datasets", "Datasets", "I", "content"),
    _Spec("data_preprocessing_code", "Data preprocessing code", "I", "code"),
    _Spec("intermediate_parameters", "Intermediate model parameters", "I", "parameters"),
)


class Component(BaseModel):
    """One MOF component. `open_license` is None when the component is not present."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    required_for: MOFClass
    present: bool
    open_license: bool | None
    license: str | None
    source: Source
    evidence: str | None = None


class MOFResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    mof_class: MOFClass | None
    label: str
    components: list[Component]
    missing_for_next_class: list[str]
    reason: str


class CheckItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    requirement: str
    met: bool | None
    source: Source
    evidence: str | None = None
    note: str


class OSIResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    verdict: Literal["meets", "does not meet", "cannot tell"]
    items: list[CheckItem]


class Openness(BaseModel):
    model_config = ConfigDict(frozen=True)

    mof: MOFResult
    osi: OSIResult


# ---------------------------------------------------------------------------------------------
# Components in the file list

_WEIGHTS = (".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".h5", ".msgpack")
_NOT_WEIGHTS = re.compile(r"^(training_args\.bin|optimizer\.pt|scheduler\.pt|rng_state.*|scaler\.pt)$")
_CODE = tuple(".py .sh .ipynb .yaml .yml .toml .cfg .c .cpp .cu .rs .go .js .ts .jl .r".split())
_DATA = (".jsonl", ".json", ".csv", ".tsv", ".parquet", ".arrow", ".txt", ".jsonl.gz", ".zst")
_SCRIPT = r"[^/]*\.(?:py|sh|ipynb)$"
_INTERMEDIATE_DIR = re.compile(r"^(checkpoints?|checkpoint[-_].*|step.*|intermediate.*)$")
_TRAINING_DIRS = frozenset({"training", "train", "finetune", "finetuning", "fine_tuning", "fine-tuning"})
_PREPROCESSING_DIRS = frozenset({"data_processing", "data_preprocessing", "preprocessing", "data_prep"})
_SAMPLE_DIRS = frozenset({"samples", "outputs", "sample_outputs", "generations"})
_LIBRARY_FILES = frozenset(
    "requirements.txt pyproject.toml setup.py setup.cfg environment.yml environment.yaml pipfile poetry.lock "
    "uv.lock".split()
)


def _file_components(path: str) -> list[str]:
    """The MOF components one file is evidence of, judged by its name and its folders."""
    parts = path.replace("\\", "/").lower().split("/")
    name, dirs = parts[-1], parts[:-1]
    found: list[str] = []
    in_eval = any(d.startswith("eval") for d in dirs)
    if name.endswith(_WEIGHTS) and not _NOT_WEIGHTS.match(name):
        found.append(
            "intermediate_parameters" if any(_INTERMEDIATE_DIR.match(d) for d in dirs) else "model_parameters"
        )
    elif any(_INTERMEDIATE_DIR.match(d) for d in dirs):
        found.append("intermediate_parameters")
    if name in ("config.json", "params.json") or re.match(r"^modeling_.*\.py$", name):
        found.append("model_architecture")
    if (
        re.match(r"^(train|finetune|fine_tune|fine-tune|pretrain)" + _SCRIPT, name)
        or (name.endswith(".ipynb") and "train" in name)
        or (any(d in _TRAINING_DIRS for d in dirs) and name.endswith(_CODE))
    ):
        found.append("training_code")
    if (
        re.match(r"^(inference|generate)" + _SCRIPT, name)
        or name == "handler.py"
        or ("examples" in dirs and name.endswith(_CODE))
    ):
        found.append("inference_code")
    if re.match(r"^(eval|evaluate)" + _SCRIPT, name) or (in_eval and name.endswith(_CODE)):
        found.append("evaluation_code")
    if "result" in name and name.endswith((".json", ".md", ".csv")) and (in_eval or "eval" in name):
        found.append("evaluation_results")
    elif (in_eval and name.endswith(_DATA)) or any(d in ("eval_data", "evaluation_data") for d in dirs):
        found.append("evaluation_data")
    plain = name.replace("_", "").replace("-", "")
    if plain in ("datacard.md", "datasetcard.md") or (
        plain.startswith("datasheet") and plain.endswith(".md")
    ):
        found.append("data_card")
    if name.endswith(".pdf") and ("report" in name or "technical" in name):
        found.append("technical_report")
    if name.endswith(".pdf") and "paper" in name:
        found.append("research_paper")
    if any(d in _SAMPLE_DIRS for d in dirs) or name.startswith("sample_output"):
        found.append("sample_outputs")
    if re.match(r"^(preprocess|prepare_data|data_prep|process_data)" + _SCRIPT, name) or (
        any(d in _PREPROCESSING_DIRS for d in dirs)
    ):
        found.append("data_preprocessing_code")
    if name in _LIBRARY_FILES or re.match(r"^requirements.*\.txt$", name):
        found.append("supporting_libraries")
    return found


def _from_files(files: Mapping[str, int]) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(files):
        for cid in _file_components(path):
            found.setdefault(cid, path)
    return found


# ---------------------------------------------------------------------------------------------
# Components in the card

_URL = re.compile(r"https?://[^\s)\]>\"'`]+")
_ARXIV = re.compile(r"https?://arxiv\.org/(?:abs|pdf)/\d{4}\.\d{4,5}(?:v\d+)?", re.IGNORECASE)
_PAPER_HOSTS = re.compile(
    r"arxiv\.org|doi\.org|openreview\.net|aclanthology\.org|proceedings\.|papers\.nips", re.IGNORECASE
)
_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
# Which code a github.com link is, from words on its line, else from its section's heading
# (the first match wins: "training data pipeline" is preprocessing, not training).
_CODE_HINTS: tuple[tuple[str, str], ...] = (
    ("data_preprocessing_code", r"preprocess|data[- ]processing|data pipeline|data[- ]prep|filtering"),
    ("evaluation_code", r"\beval"),
    ("training_code", r"\btrain|fine-?tun|pre-?train|reproduc"),
    (
        "inference_code",
        r"inference|generat|usage|how to use|quick ?start|getting started|deploy|\bserv(?:e|ing)\b",
    ),
)
_DATA_SECTION = re.compile(
    r"(training|pre-?training|fine-?tuning)\s+(data|dataset|corpus)|^data(sets?)?$"
    r"|^dataset",
    re.IGNORECASE,
)
_DATA_ASPECTS: Mapping[str, str] = {
    "provenance": r"sourc|collect|crawl|scrap|obtain|licens|public|web|books|wikipedia",
    "selection": r"filter|dedup|select|curat|clean|quality|mix",
    "labelling": r"label|annotat|synthetic|human feedback|preference|instruction",
    "scope": r"token|language|domain|size|cutoff|documents|hours|images|period",
}


@dataclass(frozen=True)
class _Section:
    heading: str
    text: str


def _sections(body: str) -> list[_Section]:
    """Markdown sections by heading, ignoring '#' lines inside fenced code."""
    sections = [_Section("", "")]
    lines: list[str] = []
    fenced = False
    for line in body.split("\n"):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            sections[-1] = _Section(sections[-1].heading, "\n".join(lines))
            sections.append(_Section(match[2].strip().strip("*").strip().lower(), ""))
            lines = []
        else:
            lines.append(line)
    sections[-1] = _Section(sections[-1].heading, "\n".join(lines))
    return sections


def _urls(text: str) -> list[str]:
    """Links in a line of Markdown, without the sentence's closing punctuation."""
    return [url.rstrip(".,;:!?*_") for url in _URL.findall(text)]


def _code_kind(text: str) -> str | None:
    return next((cid for cid, pattern in _CODE_HINTS if re.search(pattern, text, re.IGNORECASE)), None)


def _has_results(model_index: Any) -> bool:
    for model in model_index if isinstance(model_index, list) else []:
        for result in as_mapping(model).get("results") or []:
            if as_mapping(result).get("metrics"):
                return True
    return False


def _from_card(card: Mapping[str, Any], body: str) -> dict[str, str]:
    found: dict[str, str] = {}
    if body.strip():
        found["model_card"] = "README.md"
    if _has_results(card.get("model-index")):
        found["evaluation_results"] = "model-index"
    elif card.get("eval_results"):
        found["evaluation_results"] = "eval_results"
    datasets = card.get("datasets")
    names = [datasets] if isinstance(datasets, str) else datasets if isinstance(datasets, list) else []
    names = [n.strip() for n in names if isinstance(n, str) and n.strip()]
    if names:
        found["datasets"] = "datasets: " + ", ".join(names)
    tags = card.get("tags")
    tags = tags if isinstance(tags, list) else []
    arxiv_tag = next(
        (t for t in tags if isinstance(t, str) and re.fullmatch(r"arxiv:\d{4}\.\d{4,5}", t)), None
    )
    arxiv = _ARXIV.search(body)
    if arxiv:
        found["technical_report"] = arxiv[0]
    elif arxiv_tag:
        found["technical_report"] = f"https://arxiv.org/abs/{arxiv_tag.split(':', 1)[1]}"
    for line in body.split("\n"):
        if re.search(r"\bpaper\b|publication|published", line, re.IGNORECASE):
            link = next((u for u in _urls(line) if _PAPER_HOSTS.search(u)), None)
            if link:
                found.setdefault("research_paper", link)
        if "technical report" in line.lower() and _urls(line):
            found.setdefault("technical_report", _urls(line)[0])
    bibtex = re.search(r"@(inproceedings|article)\s*\{", body, re.IGNORECASE)
    if bibtex:
        found.setdefault("research_paper", f"BibTeX @{bibtex[1].lower()} in README.md")
    for section in _sections(body):
        heading_kind = (
            "data_preprocessing_code"
            if _DATA_SECTION.search(section.heading)
            else _code_kind(section.heading)
        )
        for line in section.text.split("\n"):
            for link in _urls(line):
                if "github.com/" in link.lower():
                    kind = _code_kind(line.replace(link, "")) or heading_kind
                    if kind is not None:
                        found.setdefault(kind, link)
        if (
            re.search(r"evaluat|benchmark|results|performance", section.heading)
            and sum(1 for line in section.text.split("\n") if line.strip().startswith("|")) >= 3
        ):
            found.setdefault("evaluation_results", f"README.md section '{section.heading}'")
        if (
            re.search(r"sample outputs?|example outputs?|example generations?", section.heading)
            and section.text.strip()
        ):
            found.setdefault("sample_outputs", f"README.md section '{section.heading}'")
    return found


def _data_section(body: str) -> tuple[_Section | None, list[str]]:
    """The card's training-data section and which aspects of data information it covers."""
    for section in _sections(body):
        if _DATA_SECTION.search(section.heading):
            text = section.text.lower()
            return section, [aspect for aspect, pattern in _DATA_ASPECTS.items() if re.search(pattern, text)]
    return None, []


# ---------------------------------------------------------------------------------------------
# Licenses


def _terms_name(license_id: str) -> str:
    terms = get_license(license_id)
    return terms.name if terms is not None else license_id


def _open_for(kind: Kind, license_id: str | None) -> bool:
    if license_id is None:
        return False
    terms = get_license(license_id)
    if terms is not None and terms.field_of_use_restrictions:
        return False
    if kind == "code":
        return terms.osi_approved if terms is not None else license_id in _OSI_APPROVED_EXTRA
    if kind == "parameters":
        return license_id in OPEN_PARAMETER_LICENSES
    return license_id in OPEN_CONTENT_LICENSES


def _osi_approved(license_id: str | None) -> bool | None:
    """True/False when known; None for a license id neither the catalogue nor the extra list knows."""
    if license_id is None:
        return False
    terms = get_license(license_id)
    if terms is not None:
        return terms.osi_approved and not terms.field_of_use_restrictions
    return True if license_id in _OSI_APPROVED_EXTRA else None


# ---------------------------------------------------------------------------------------------
# MOF


def _presence(value: Any) -> tuple[bool, str | None]:
    if isinstance(value, str):
        return bool(value.strip()), value.strip() or None
    return bool(value), None


def _locate(
    component: str,
    stated: AccessProfileOverrides,
    found: Mapping[str, tuple[Source, str]],
    listed: Mapping[str | None, Any],
    weights_available: bool | None,
    has_catalogue: bool,
) -> tuple[bool, Source, str | None]:
    """Whether a component is released, where that was learnt and the evidence; the releaser wins."""
    if stated.components and component in stated.components:
        present, evidence = _presence(stated.components[component])
        return present, "releaser", evidence or f"access_profile.components.{component}"
    if component in found:
        source, evidence = found[component]
        return True, source, evidence
    if component == "model_parameters" and weights_available is not None:
        return weights_available, "catalogue" if has_catalogue else "default", None
    if listed.get(component) is not None:
        present, evidence = _presence(listed[component])
        return present, "catalogue", evidence or f"components.{component}"
    return False, "default", None


def _components(
    files: Mapping[str, int],
    card: Mapping[str, Any],
    body: str,
    config: Mapping[str, Any],
    license: ResolvedLicense,
    stated: AccessProfileOverrides,
    catalogue: Mapping[str, Any],
    weights_available: bool | None,
) -> list[Component]:
    found: dict[str, tuple[Source, str]] = {cid: ("files", path) for cid, path in _from_files(files).items()}
    if config:
        found.setdefault("model_architecture", ("config", "config.json"))
    for cid, evidence in _from_card(card, body).items():
        found.setdefault(cid, ("card", evidence))
    listed = {component_id(key): value for key, value in catalogue.items() if isinstance(key, str)}
    repo_license = (
        license.terms.id if license.terms is not None and license.terms.id != "other" else license.id
    )
    out = []
    for spec in COMPONENTS:
        present, source, where = _locate(spec.id, stated, found, listed, weights_available, bool(catalogue))
        chosen = (stated.component_licenses or {}).get(spec.id, repo_license)
        out.append(
            Component(
                id=spec.id,
                name=spec.name,
                required_for=spec.required_for,
                present=present,
                open_license=_open_for(spec.kind, chosen) if present else None,
                license=chosen,
                source=source,
                evidence=where,
            )
        )
    return out


def _ok(component: Component) -> bool:
    return component.present and bool(component.open_license)


def _names(components: list[Component]) -> str:
    names = [c.name.lower() for c in components]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _not_class_iii(components: list[Component], license: ResolvedLicense) -> str:
    by_id = {c.id: c for c in components}
    parameters = by_id["model_parameters"]
    if not parameters.present:
        return "Not Class III: the model parameters are not released, so there is no open model to class."
    if not parameters.open_license:
        if parameters.license is None:
            return "Not Class III: no license is stated, so the parameters are not under an open license."
        terms = get_license(parameters.license)
        name = (
            license.name
            if parameters.license == license.id and license.name
            else _terms_name(parameters.license)
        )
        if terms is not None and terms.field_of_use_restrictions:
            return (
                f"Not Class III: the {name} restricts fields of use, "
                "so the parameters are not under an open license."
            )
        return f"Not Class III: {name} is not an open license for model parameters."
    needed = [c for c in components if c.required_for == "III"]
    missing = [c for c in needed if not c.present]
    if missing:
        return f"Not Class III: the release lacks the {_names(missing)}."
    closed = [c for c in needed if not c.open_license]
    return f"Not Class III: the release has no open license of the right kind for the {_names(closed)}."


def judge_mof(components: list[Component], license: ResolvedLicense) -> MOFResult:
    mof_class: MOFClass | None = None
    levels: tuple[MOFClass, ...] = ("III", "II", "I")
    for level in levels:
        if all(_ok(c) for c in components if _RANK[c.required_for] <= _RANK[level]):
            mof_class = level
        else:
            break
    following = _NEXT[mof_class]
    blocking = [
        c
        for c in components
        if following is not None and _RANK[c.required_for] <= _RANK[following] and not _ok(c)
    ]
    if mof_class is None:
        reason = _not_class_iii(components, license)
    elif following is None:
        reason = f"{LABELS['I']}: every component is released under an open license of the right kind."
    else:
        reason = (
            f"{LABELS[mof_class]}: every Class {mof_class} component is released under an open license; "
            f"Class {following} also needs the {_names(blocking)}."
        )
    return MOFResult(
        mof_class=mof_class,
        label=LABELS[mof_class] if mof_class else "Not classed",
        components=components,
        missing_for_next_class=[c.name for c in blocking],
        reason=reason,
    )


# ---------------------------------------------------------------------------------------------
# OSI Open Source AI Definition 1.0

_FREEDOMS = (
    ("freedom_use", "Use the system for any purpose and without having to ask for permission"),
    ("freedom_study", "Study how the system works and inspect its components"),
    ("freedom_modify", "Modify the system for any purpose, including to change its output"),
    ("freedom_share", "Share the system for others to use, with or without modifications, for any purpose"),
)
_CODE_ITEMS = (
    ("code_data_processing", "Code: data processing and filtering", "data_preprocessing_code"),
    ("code_training", "Code: training", "training_code"),
    ("code_validation", "Code: validation and testing", "evaluation_code"),
    ("code_inference", "Code: inference", "inference_code"),
    ("code_supporting_libraries", "Code: supporting libraries and tools", "supporting_libraries"),
    ("code_architecture", "Code: model architecture", "model_architecture"),
)


def _freedoms(license: ResolvedLicense, parameters: Component) -> list[CheckItem]:
    terms = license.terms
    shown = license.name or license.id
    met: dict[str, bool | None]
    if license.id is None:
        met = dict.fromkeys(("use", "study", "modify", "share"), False)
        notes = dict.fromkeys(met, "No license is stated, so none of the freedoms is granted.")
    elif terms is None or terms.id == "other":
        met = dict.fromkeys(("use", "study", "modify", "share"), None)
        notes = dict.fromkeys(met, f"{shown} is not in releasehub's license catalogue: read its text.")
    elif terms.osi_approved:
        met = dict.fromkeys(("use", "study", "modify", "share"), True)
        notes = dict.fromkeys(met, f"The {terms.name} is OSI-approved.")
    else:
        restricted = bool(terms.field_of_use_restrictions)
        reasons = []
        if restricted:
            reasons.append("restricts fields of use")
        if terms.commercial_use != ALLOWED:
            reasons.append(f"makes commercial use {terms.commercial_use}")
        if terms.user_threshold is not None:
            reasons.append(f"needs a separate license above {terms.user_threshold:,} monthly active users")
        use_note = (
            f"The {terms.name} " + ", ".join(reasons) + "."
            if reasons
            else f"The {terms.name} allows any use."
        )
        met = {
            "use": not reasons,
            "study": True,
            "modify": not (restricted or terms.derivative_naming or terms.commercial_use == "forbidden"),
            "share": not (restricted or terms.redistribution == "forbidden"),
        }
        notes = {
            "use": use_note,
            "study": f"The {terms.name} lets anyone inspect the components it covers.",
            "modify": (
                f"The {terms.name} lets anyone modify the model."
                if met["modify"]
                else f"Under the {terms.name} modified models stay bound by its restrictions or naming rules."
            ),
            "share": (
                f"The {terms.name} lets anyone share the model."
                if met["share"]
                else f"Under the {terms.name} sharing passes its restrictions on, or is not allowed."
            ),
        }
    if not parameters.present:
        met["study"] = False
        notes["study"] = "The parameters are not released, so the system cannot be inspected."
    source: Source = "license" if license.id is not None else "default"
    return [
        CheckItem(
            id=item,
            requirement=requirement,
            met=met[item.split("_")[1]],
            source=source,
            evidence=license.id,
            note=notes[item.split("_")[1]],
        )
        for item, requirement in _FREEDOMS
    ]


def _explicitly_absent(component: Component) -> bool:
    return not component.present and component.source in ("releaser", "catalogue")


def _data_information(by_id: Mapping[str, Component], body: str) -> CheckItem:
    def item(met: bool | None, source: Source, evidence: str | None, note: str) -> CheckItem:
        return CheckItem(
            id="data_information",
            requirement="Data information: sufficiently detailed information about the training data "
            "(description, provenance, scope, how it was obtained and selected, labelling, public sources "
            "listed)",
            met=met,
            source=source,
            evidence=evidence,
            note=note,
        )

    data_card, datasets = by_id["data_card"], by_id["datasets"]
    section, aspects = _data_section(body)
    if data_card.present:
        note = "Judged from the data card's presence: read it to check it covers every point."
        return item(True, data_card.source, data_card.evidence, note)
    if section is not None:
        where = f"README.md section '{section.heading}'"
        brief = len(section.text.split()) < 40
        if not brief and len(aspects) >= 3:
            return item(True, "card", where, f"The card's training-data section covers {', '.join(aspects)}.")
        missing = [aspect for aspect in _DATA_ASPECTS if aspect not in aspects]
        gaps = f"does not cover {', '.join(missing)}" if missing else ""
        note = "The card's training-data section " + " and ".join(filter(None, ["is brief" * brief, gaps]))
        return item(None, "card", where, note + ".")
    if _explicitly_absent(data_card):
        note = "No data card or training-data information is published."
        return item(False, data_card.source, data_card.evidence, note)
    if datasets.present:
        note = "Only the datasets' names are given; how they were obtained and selected is not."
        return item(None, datasets.source, datasets.evidence, note)
    note = (
        "No data information was found in the files or the card; a releaser can point to it with "
        "access_profile.components.data_card."
    )
    return item(None, "default", None, note)


def _code_item(item: str, requirement: str, component: Component) -> CheckItem:
    if component.present:
        approved = _osi_approved(component.license)
        note = (
            "Released under an OSI-approved license."
            if approved
            else "Released, but under no license."
            if component.license is None
            else f"Released under {component.license}, which is not OSI-approved."
            if approved is False
            else f"Released under {component.license}; releasehub cannot tell whether it is OSI-approved."
        )
        return CheckItem(
            id=item,
            requirement=requirement,
            met=approved,
            source=component.source,
            evidence=component.evidence,
            note=note,
        )
    if _explicitly_absent(component):
        return CheckItem(
            id=item,
            requirement=requirement,
            met=False,
            source=component.source,
            evidence=component.evidence,
            note=f"The {component.name.lower()} is not released.",
        )
    return CheckItem(
        id=item,
        requirement=requirement,
        met=None,
        source="default",
        note=f"No {component.name.lower()} was found; a releaser can point to it with "
        f"access_profile.components.{component.id}.",
    )


def _parameters_item(parameters: Component) -> CheckItem:
    requirement = "Parameters: the weights and configuration, under OSI-approved terms"
    met: bool | None
    if not parameters.present:
        met, note = False, "The model parameters are not released."
    elif parameters.license is None:
        met, note = False, "No license is stated for the parameters."
    elif _osi_approved(parameters.license):
        met, note = True, f"Released under {_terms_name(parameters.license)}, which is OSI-approved."
    elif parameters.license in OPEN_PARAMETER_LICENSES:
        met, note = (
            None,
            (
                f"Released under {_terms_name(parameters.license)}, an open license that is not an "
                "OSI-approved software license; the OSI has not listed which terms it accepts for "
                "parameters."
            ),
        )
    else:
        met, note = False, f"Released under {_terms_name(parameters.license)}, which is not OSI-approved."
    return CheckItem(
        id="parameters",
        requirement=requirement,
        met=met,
        source=parameters.source,
        evidence=parameters.evidence,
        note=note,
    )


def judge_osi(components: list[Component], license: ResolvedLicense, body: str) -> OSIResult:
    by_id = {c.id: c for c in components}
    items = [
        *_freedoms(license, by_id["model_parameters"]),
        _data_information(by_id, body),
        *(_code_item(item, requirement, by_id[cid]) for item, requirement, cid in _CODE_ITEMS),
        _parameters_item(by_id["model_parameters"]),
    ]
    verdict: Literal["meets", "does not meet", "cannot tell"] = (
        "does not meet"
        if any(i.met is False for i in items)
        else "cannot tell"
        if any(i.met is None for i in items)
        else "meets"
    )
    return OSIResult(verdict=verdict, items=items)


# ---------------------------------------------------------------------------------------------


def judge_openness(
    files: Mapping[str, int],
    card: Mapping[str, Any] | None,
    card_text: str | None,
    config: Mapping[str, Any] | None,
    license: ResolvedLicense,
    overrides: Mapping[str, Any] | AccessProfileOverrides | None,
    catalogue_components: Mapping[str, Any] | None = None,
    *,
    weights_available: bool | None = None,
) -> Openness:
    """MOF class and OSAID checklist of a release. Raises InvalidOverrides for a malformed `access_profile`.

    `weights_available` matters only when the file list shows no weights (a catalogue entry):
    True says the parameters are released, False that they are not. Left None with no files,
    a catalogue entry that carries a config.json counts as open weights (the catalogue keeps
    configs of open models only).
    """
    stated = parse_overrides(overrides)
    body = markdown_body(card_text)
    if weights_available is None and catalogue_components is not None and not files and config:
        # A catalogue entry carries a config.json only for open-weights models.
        weights_available = True
    components = _components(
        files,
        as_mapping(card),
        body,
        as_mapping(config),
        license,
        stated,
        as_mapping(catalogue_components),
        weights_available,
    )
    return Openness(mof=judge_mof(components, license), osi=judge_osi(components, license, body))


__all__ = [
    "COMPONENTS",
    "LABELS",
    "OPEN_CONTENT_LICENSES",
    "OPEN_PARAMETER_LICENSES",
    "CheckItem",
    "Component",
    "MOFResult",
    "OSIResult",
    "Openness",
    "judge_mof",
    "judge_openness",
    "judge_osi",
]
