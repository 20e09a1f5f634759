"""A repo's release policy: the document a releaser writes, and the compiled rules `decide` reads.

The same document comes from three places, and all three change the one stored policy:

- the API (`PUT /api/models/{repo}/policy`) and the CLI (`releasehub policy set REPO FILE`),
  which send it whole;
- the model card, whose Hub fields (`extra_gated_prompt`, `extra_gated_fields`, ...) and a
  `releasehub:` mapping (stages, tiers, components, eligibility) are applied when a commit
  changes README.md on `main`;
- `update_repo_settings(gated=..., visibility=...)` from the unchanged Hub client.

Paths are matched by glob: a pattern without `/` matches a file name at any depth
(`*.safetensors`); a pattern with `/` matches the whole path, `*` stays inside one directory
and `**` crosses directories (`*-70b/*.safetensors`, `data/**`). Matching ignores case, as
the file systems and the people who name files do: `*.safetensors` holds back
`Model.SafeTensors` too.

Times in stages are absolute UTC instants. The document accepts `+30d`, `+12h` or `now`,
which `normalise` turns into instants when the policy is stored, so that a schedule does not
slide each time it is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Visibility = Literal["private", "internal", "public"]
GateMode = Literal["auto", "manual"]
FIELD_TYPES = ("text", "checkbox", "date_picker", "country", "select")
EVERYONE = "everyone"  # a stage audience: whoever can see the repo
GRANTED = "granted"  # a stage audience: whoever holds an active grant, any tier
ALL_COMPONENTS = "*"

# Files that belong to the card: always visible where the repo is, never gated, so that a
# gated repo keeps its card readable (as on the Hub).
CARD_FILES = frozenset({"README.md", ".gitattributes"})
# Of those, what downloads through a gate: the card. `.gitattributes` is gated like any file, as on
# the Hub (huggingface_hub's own tests download it to check that a gated repo refuses).
UNGATED_FILES = frozenset({"README.md"})

COMPONENTS = ("weights", "code", "data", "documentation", "evaluations", "other")

# What a hosted-only release still hands out: the card and documentation, the license, and what a
# client needs to call the API well (config, generation config, tokenizer, chat template). Every
# other file is withheld, whatever its name or extension: an allowlist, since a list of weight
# extensions cannot hold (`weights.pkl`, `x.pth.tar`, extensionless shards).
HOSTED_ALLOWED: tuple[str, ...] = (
    "README.md", ".gitattributes", "*.md", "LICENSE*", "LICENCE*", "NOTICE*", "USE_POLICY*", "docs/**",
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
    "special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt", "merges.txt",
    "chat_template.jinja", "chat_template.json", "preprocessor_config.json",
)

# First match wins; a policy's own `components` globs are tried before these.
DEFAULT_COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("documentation", ("*.md", "LICENSE*", "NOTICE*", "USE_POLICY*", "docs/**", "*.pdf")),
    ("evaluations", ("eval/**", "evals/**", "evaluation/**", "evaluations/**", "*eval*.json",
                     "*eval*.jsonl", "*results*.json")),
    ("code", ("*.py", "*.ipynb", "*.sh", "*.js", "*.ts", "*.rs", "*.c", "*.cc", "*.cpp", "*.cu", "*.h",
              "requirements*.txt", "pyproject.toml", "Dockerfile")),
    ("data", ("data/**", "dataset/**", "datasets/**", "*.parquet", "*.arrow", "*.jsonl", "*.csv", "*.tsv")),
    ("weights", ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.gguf", "*.onnx", "*.h5",
                 "*.msgpack", "*.npz", "*.tflite", "*.index.json", "config.json", "generation_config.json",
                 "tokenizer*", "special_tokens_map.json", "vocab*", "merges.txt", "*.model", "*.tiktoken",
                 "preprocessor_config.json", "chat_template*", "added_tokens.json")),
)


class PolicyError(ValueError):
    """The policy document is invalid; the message says where and what to write instead."""


# ---------------------------------------------------------------------------------------------
# Globs


@lru_cache(maxsize=4096)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z", re.IGNORECASE)


def glob_match(pattern: str, path: str) -> bool:
    """Does `path` match `pattern` (see the module docstring for the rules)?"""
    if "/" not in pattern:
        return _glob_regex(pattern).match(path.rsplit("/", 1)[-1]) is not None
    return _glob_regex(pattern.lstrip("/")).match(path) is not None


def _check_glob(pattern: str) -> str:
    if not pattern or len(pattern) > 500 or "\x00" in pattern:
        raise ValueError(f"invalid glob {pattern!r}: give a non-empty pattern such as '*.safetensors'")
    try:
        _glob_regex(pattern.lstrip("/"))
    except re.error as exc:
        raise ValueError(f"invalid glob {pattern!r}: {exc}") from None
    return pattern


# ---------------------------------------------------------------------------------------------
# The document


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FormField(_Doc):
    """One field of the gate form (the Hub's `extra_gated_fields`)."""

    label: str = Field(min_length=1, max_length=300)
    type: Literal["text", "checkbox", "date_picker", "country", "select"] = "text"
    options: tuple[str, ...] = ()
    required: bool = True

    @model_validator(mode="after")
    def _options(self) -> "FormField":
        if self.type == "select" and not self.options:
            raise ValueError(f"select field {self.label!r} needs `options`")
        return self


class Gate(_Doc):
    """What the requester sees and fills in (the Hub's `extra_gated_*` card fields)."""

    heading: str | None = Field(default=None, max_length=500)
    prompt: str | None = Field(default=None, max_length=20_000)
    description: str | None = Field(default=None, max_length=20_000)
    button_content: str | None = Field(default=None, max_length=200)
    fields: tuple[FormField, ...] = ()


class Eligibility(_Doc):
    """Rules checked before any grant; a refusal names the rule that failed."""

    allowed_countries: tuple[str, ...] = ()  # ISO 3166 alpha-2 codes; empty: any
    denied_countries: tuple[str, ...] = ()
    eu_disallowed: bool = False
    min_age: int | None = Field(default=None, ge=1, le=150)
    purposes: tuple[str, ...] = ()  # allowed declared purposes; empty: any
    email_domains: tuple[str, ...] = ()  # a verified email in one of these domains (or a subdomain)

    @field_validator("allowed_countries", "denied_countries")
    @classmethod
    def _countries(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        from releasehub.access.eligibility import country_code

        codes = []
        for item in value:
            code = country_code(item)
            if code is None:
                raise ValueError(f"unknown country {item!r}: use an ISO 3166 code such as 'DE' or a name")
            codes.append(code)
        return tuple(codes)

    @field_validator("email_domains")
    @classmethod
    def _domains(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(d.lower().lstrip("@").strip() for d in value)

    @property
    def empty(self) -> bool:
        return self == Eligibility()


class TierApi(_Doc):
    """What a tier's API keys may do on a hosted repo (the gateway): limits and depth of access.

    Absent numbers are unlimited; absent depth flags are off (sampling only).
    """

    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    requests_per_day: int | None = Field(default=None, ge=1)
    concurrency: int | None = Field(default=None, ge=1)
    max_tokens: int | None = Field(default=None, ge=1)       # largest max_tokens a request may ask for
    max_context: int | None = Field(default=None, ge=1)      # prompt tokens plus max_tokens
    logprobs: bool = False                                   # logprobs / top_logprobs on outputs
    top_logprobs: int = Field(default=0, ge=0, le=20)        # the largest top_logprobs allowed
    echo: bool = False                                       # echo / prompt logprobs (completions)


class Tier(_Doc):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    components: tuple[str, ...]
    review: GateMode | None = None  # how requests for this tier are decided; default: the repo's gate
    grant_days: int | None = Field(default=None, ge=1, le=36500)
    description: str | None = Field(default=None, max_length=2000)
    api: TierApi | None = None  # the gateway's limits for this tier's keys; default: the policy's `api`


class Release(_Doc):
    audience: str = Field(min_length=1, max_length=40)  # "everyone", "granted" or a tier name
    at: datetime


class Stage(_Doc):
    name: str = Field(min_length=1, max_length=100)
    files: tuple[str, ...] = Field(min_length=1)
    releases: tuple[Release, ...] = ()

    @field_validator("files")
    @classmethod
    def _globs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_check_glob(p) for p in value)


class PolicyDoc(_Doc):
    """The whole policy as a releaser writes it (YAML or JSON)."""

    visibility: Visibility | None = None
    gated: GateMode | Literal[False] | None = None
    license: str | None = Field(default=None, max_length=100)  # overrides the card's `license`
    gate: Gate = Gate()
    eligibility: Eligibility = Eligibility()
    components: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    tiers: tuple[Tier, ...] = ()
    default_tier: str | None = None
    stages: tuple[Stage, ...] = ()
    grant_days: int | None = Field(default=None, ge=1, le=36500)
    # Weight files never leave the server (downloads refused to everyone); use is through the gateway.
    hosted_only: bool = False
    api: TierApi | None = None  # gateway limits for keys whose tier sets none

    @field_validator("components")
    @classmethod
    def _components(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for name, globs in value.items():
            if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", name):
                raise ValueError(f"component name {name!r}: use lower-case letters, digits, - or _")
            for g in globs:
                _check_glob(g)
        return value

    @model_validator(mode="after")
    def _references(self) -> "PolicyDoc":
        known = set(COMPONENTS) | set(self.components) | {ALL_COMPONENTS}
        names = [t.name for t in self.tiers]
        if len(set(names)) != len(names):
            raise ValueError("tier names must be unique")
        for tier in self.tiers:
            for comp in tier.components:
                if comp not in known:
                    raise ValueError(f"tier {tier.name!r} names unknown component {comp!r}; "
                                     f"known: {', '.join(sorted(known))}")
        if self.default_tier is not None and self.default_tier not in names:
            raise ValueError(f"default_tier {self.default_tier!r} is not one of the tiers ({', '.join(names)})")
        audiences = {EVERYONE, GRANTED, *names}
        for stage in self.stages:
            for release in stage.releases:
                if release.audience not in audiences:
                    raise ValueError(f"stage {stage.name!r}: unknown audience {release.audience!r}; "
                                     f"use one of {', '.join(sorted(audiences))}")
        return self


def _parse_when(value: Any, now: datetime) -> Any:
    """`now`, `+30d`, `+12h`, `+90m`, a date or a datetime → an aware UTC datetime."""
    if isinstance(value, str):
        text = value.strip()
        if text == "now":
            return now
        m = re.fullmatch(r"\+(\d{1,6})([dhm])", text)
        if m:
            n, unit = int(m.group(1)), m.group(2)
            return now + {"d": timedelta(days=n), "h": timedelta(hours=n), "m": timedelta(minutes=n)}[unit]
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise PolicyError(f"cannot read the time {value!r}: write an ISO date such as 2027-01-01, "
                              "or +30d / +12h / now") from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value


def parse_policy(raw: Any, now: datetime) -> PolicyDoc:
    """Validates a policy document; relative times become instants. Raises PolicyError."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise PolicyError("A policy is a mapping (YAML or JSON object) with keys such as gated, tiers, stages.")
    data = dict(raw)
    stages = data.get("stages")
    if isinstance(stages, list):
        data["stages"] = [
            {**s, "releases": [{**r, "at": _parse_when(r.get("at"), now)} if isinstance(r, dict) else r
                               for r in (s.get("releases") or [])]} if isinstance(s, dict) else s
            for s in stages
        ]
    gate = data.get("gate")
    if isinstance(gate, dict) and isinstance(gate.get("fields"), dict):
        data["gate"] = {**gate, "fields": hub_fields(gate["fields"])}
    try:
        doc = PolicyDoc.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(_explain(exc)) from None
    from releasehub.access.eligibility import unsatisfiable

    problems = unsatisfiable(doc.eligibility, doc.gate)
    if problems:
        raise PolicyError("Invalid policy: " + "; ".join(problems))
    return doc


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "policy"
        parts.append(f"{where}: {err['msg']}")
    return "Invalid policy: " + "; ".join(parts)


def hub_fields(raw: Any) -> list[dict[str, Any]]:
    """The Hub's `extra_gated_fields` mapping (label → type, or label → {type, options}) as fields."""
    if not isinstance(raw, dict):
        raise PolicyError("extra_gated_fields must map each field's label to its type "
                          "(text, checkbox, date_picker, country, or {type: select, options: [...]})")
    fields = []
    for label, spec in raw.items():
        if isinstance(spec, str):
            fields.append({"label": str(label), "type": spec})
        elif isinstance(spec, dict):
            options = []
            for opt in spec.get("options") or []:
                options.append(str(opt.get("value", opt.get("label"))) if isinstance(opt, dict) else str(opt))
            item: dict[str, Any] = {"label": str(label), "type": spec.get("type", "text"), "options": options}
            if "required" in spec:
                item["required"] = bool(spec["required"])
            fields.append(item)
        else:
            raise PolicyError(f"extra_gated_fields[{label!r}]: give a type name or a mapping with `type`")
    return fields


def policy_from_card(card: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The policy keys a model card sets: the Hub's `extra_gated_*` fields and a `releasehub:` mapping."""
    if not card:
        return {}
    out: dict[str, Any] = {}
    gate: dict[str, Any] = {}
    for key in ("heading", "prompt", "description", "button_content"):
        value = card.get(f"extra_gated_{key}")
        if isinstance(value, str):
            gate[key] = value
    if "extra_gated_fields" in card:
        gate["fields"] = hub_fields(card["extra_gated_fields"])
    if gate:
        out["gate"] = gate
    if card.get("extra_gated_eu_disallowed") is True:
        out["eligibility"] = {"eu_disallowed": True}
    extra = card.get("releasehub")
    if isinstance(extra, dict):
        for key, value in extra.items():
            if key == "eligibility" and isinstance(value, dict):
                out["eligibility"] = {**out.get("eligibility", {}), **value}
            elif key == "gate" and isinstance(value, dict):
                out["gate"] = {**out.get("gate", {}), **value}
            else:
                out[key] = value
    return out


def document_json(doc: PolicyDoc) -> dict[str, Any]:
    """The stored form: JSON-safe, without unset defaults."""
    return doc.model_dump(mode="json", exclude_defaults=True)


# ---------------------------------------------------------------------------------------------
# Compiled rules: what `decide` reads on every request


@dataclass(frozen=True)
class ReleaseRules:
    """Stages, tiers and components of one repo, compiled for `decide`. Plain data."""

    components: tuple[tuple[str, tuple[str, ...]], ...] = ()
    tiers: dict[str, frozenset[str]] = field(default_factory=dict)
    default_tier: str | None = None
    stages: tuple[Stage, ...] = ()
    hosted_only: bool = False

    @property
    def has_tiers(self) -> bool:
        return bool(self.tiers)

    def component_of(self, path: str) -> str:
        for name, globs in (*self.components, *DEFAULT_COMPONENTS):
            if any(glob_match(g, path) for g in globs):
                return name
        return "other"

    def hosted_allows(self, path: str) -> bool:
        """On a hosted-only release: is this one of the files that still download?"""
        return any(glob_match(g, path) for g in HOSTED_ALLOWED)

    def stage_of(self, path: str) -> Stage | None:
        for stage in self.stages:
            if any(glob_match(g, path) for g in stage.files):
                return stage
        return None

    def tier_opens(self, tier: str | None, path: str) -> bool:
        if not self.tiers:
            return True
        opened = self.tiers.get(tier or "") if tier else None
        if opened is None:
            return False
        return ALL_COMPONENTS in opened or self.component_of(path) in opened

    def released(self, stage: Stage, tier: str | None, granted: bool, now: datetime) -> bool:
        for release in stage.releases:
            if release.at > now:
                continue
            if release.audience == EVERYONE:
                return True
            if granted and (release.audience == GRANTED or release.audience == tier):
                return True
        return False

    def next_release(self, path: str, now: datetime) -> datetime | None:
        stage = self.stage_of(path)
        if stage is None:
            return None
        future = [r.at for r in stage.releases if r.at > now]
        return min(future) if future else None


NO_RULES = ReleaseRules()


def compile_rules(doc: PolicyDoc) -> ReleaseRules:
    if not doc.tiers and not doc.stages and not doc.components and not doc.hosted_only:
        return NO_RULES
    default_tier = doc.default_tier
    if default_tier is None and doc.tiers:
        default_tier = "public" if any(t.name == "public" for t in doc.tiers) else None
    return ReleaseRules(
        components=tuple((k, tuple(v)) for k, v in doc.components.items()),
        tiers={t.name: frozenset(t.components) for t in doc.tiers},
        default_tier=default_tier,
        stages=doc.stages,
        hosted_only=doc.hosted_only,
    )
