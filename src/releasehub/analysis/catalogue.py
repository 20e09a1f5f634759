"""The reference models, shipped as data: configs and card facts, never weights.

Each model is one JSON file in `releasehub/analysis/data/models/`, named after its id. Open models
carry their `config.json` as published (the keys that decide shapes and parameter counts) and
the published parameter count; closed models carry only what their developer publishes about
access: interfaces, context length and API prices. The four models of "Beyond Release" (2025)
are here with the prices of the paper's Resourcing table.

Files are validated when the catalogue is first loaded; a malformed file raises
`CatalogueError` naming the file. Entries are shared (the catalogue is loaded once per process),
so treat their dicts as read-only and copy them (`copy.deepcopy`, or `CatalogueEntry.to_dict`)
before changing anything.

Pure data: no web or database imports; the only I/O is reading the package's own data files.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType
from typing import Any

WEIGHTS = ("open", "closed")
PROPRIETARY = "proprietary"  # the license id of a closed model

_ID = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_MONTH_OR_DATE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")

_TOP_KEYS = ("id", "name", "developer", "hub_id", "aliases", "released", "weights", "license",
             "published_parameters", "published_precision", "config", "card", "api", "notes")
_LICENSE_KEYS = ("id", "name", "link")
_PARAMETER_KEYS = ("total", "active", "source")
_CARD_KEYS = ("languages", "modalities_in", "modalities_out", "context_length", "max_output_tokens",
              "knowledge_cutoff", "interfaces", "fine_tuning", "components")
_INTERFACE_KEYS = ("ui", "developer_api", "third_party_api")
_FINE_TUNING_KEYS = ("weights", "api")
COMPONENTS = ("training_code", "inference_code", "technical_report", "research_paper", "evaluation_results",
              "model_card", "data_card", "datasets", "intermediate_checkpoints")
_API_KEYS = ("provider", "input_per_mtok", "output_per_mtok", "cached_input_per_mtok", "source", "as_of")
MODALITIES = ("text", "image", "audio", "video")


class CatalogueError(ValueError):
    """A catalogue file is missing, unreadable or malformed; the message names the file."""


@dataclass(frozen=True)
class ApiPrice:
    """One provider's price for a model, in US dollars per million tokens."""

    provider: str
    input_per_mtok: float | None
    output_per_mtok: float | None
    cached_input_per_mtok: float | None
    source: str
    as_of: str | None


@dataclass(frozen=True)
class CatalogueEntry:
    """One reference model (see the module docstring for the file format).

    `config` is the model's `config.json` (None for closed models). `published_parameters` holds
    `total` and, for mixtures of experts, `active` as the developer or the Hub states them, with
    their `source`. `card` holds the facts of the model card: languages, modalities, context
    length, knowledge cutoff, interfaces, fine-tuning routes and the released components.
    """

    id: str
    name: str
    developer: str
    hub_id: str | None
    aliases: tuple[str, ...]
    released: str
    weights: str
    license: dict[str, Any]
    published_parameters: dict[str, Any]
    published_precision: str | None
    config: dict[str, Any] | None
    card: dict[str, Any]
    api: tuple[ApiPrice, ...]
    notes: str

    def __hash__(self) -> int:  # the dict fields are not hashable; the id is unique
        return hash(self.id)

    @property
    def is_open(self) -> bool:
        return self.weights == "open"

    @property
    def total_parameters(self) -> int | None:
        return self.published_parameters.get("total")

    @property
    def active_parameters(self) -> int | None:
        """Parameters used per token: the published active count for a mixture of experts, else the total."""
        return self.published_parameters.get("active") or self.published_parameters.get("total")

    def to_dict(self) -> dict[str, Any]:
        """A fresh JSON-ready copy, in the file's shape."""
        return {
            "id": self.id, "name": self.name, "developer": self.developer, "hub_id": self.hub_id,
            "aliases": list(self.aliases), "released": self.released, "weights": self.weights,
            "license": copy.deepcopy(self.license),
            "published_parameters": copy.deepcopy(self.published_parameters),
            "published_precision": self.published_precision, "config": copy.deepcopy(self.config),
            "card": copy.deepcopy(self.card),
            "api": [dict(vars(price)) for price in self.api], "notes": self.notes,
        }


# ---------------------------------------------------------------------------------------------
# Validation


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def keys(self, where: str, value: Any, expected: tuple[str, ...]) -> bool:
        """Check that `value` is an object with exactly the expected keys; False when it is not an object."""
        if not isinstance(value, dict):
            self.add(f"{where} must be an object")
            return False
        missing = [k for k in expected if k not in value]
        unknown = sorted(k for k in value if k not in expected)
        if missing:
            self.add(f"{where} is missing {', '.join(missing)}")
        if unknown:
            self.add(f"{where} has unknown keys {', '.join(unknown)}")
        return True

    def text(self, where: str, value: Any, *, optional: bool = False) -> None:
        if value is None and optional:
            return
        if not isinstance(value, str) or not value.strip():
            self.add(f"{where} must be a non-empty string" + (" or null" if optional else ""))

    def url(self, where: str, value: Any, *, optional: bool = True) -> None:
        if value is None and optional:
            return
        if not isinstance(value, str) or not value.startswith("https://"):
            self.add(f"{where} must be an https URL" + (" or null" if optional else ""))

    def count(self, where: str, value: Any, *, optional: bool = False) -> None:
        if value is None and optional:
            return
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.add(f"{where} must be a positive integer" + (" or null" if optional else ""))

    def flag(self, where: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.add(f"{where} must be true or false")

    def strings(self, where: str, value: Any, *, allowed: tuple[str, ...] | None = None, empty: bool = True) -> None:
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            self.add(f"{where} must be a list of non-empty strings")
            return
        if not empty and not value:
            self.add(f"{where} must not be empty")
        if allowed is not None and any(v not in allowed for v in value):
            self.add(f"{where} may only hold {', '.join(allowed)}")
        if len(set(value)) != len(value):
            self.add(f"{where} has duplicates")

    def pattern(self, where: str, value: Any, regex: re.Pattern[str], shape: str, *, optional: bool = False) -> None:
        if value is None and optional:
            return
        if not isinstance(value, str) or not regex.match(value):
            self.add(f"{where} must be {shape}" + (" or null" if optional else ""))


def _price(where: str, value: Any, problems: _Problems) -> ApiPrice | None:
    if not problems.keys(where, value, _API_KEYS):
        return None
    problems.text(f"{where}.provider", value.get("provider"))
    problems.text(f"{where}.source", value.get("source"))
    problems.pattern(f"{where}.as_of", value.get("as_of"), _MONTH_OR_DATE, "YYYY-MM or YYYY-MM-DD", optional=True)
    for key in ("input_per_mtok", "output_per_mtok", "cached_input_per_mtok"):
        amount = value.get(key)
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0):
            problems.add(f"{where}.{key} must be a non-negative number or null")
    if value.get("input_per_mtok") is None and value.get("output_per_mtok") is None:
        problems.add(f"{where} gives neither an input nor an output price")
    return ApiPrice(
        provider=value.get("provider"),
        input_per_mtok=None if value.get("input_per_mtok") is None else float(value["input_per_mtok"]),
        output_per_mtok=None if value.get("output_per_mtok") is None else float(value["output_per_mtok"]),
        cached_input_per_mtok=(None if value.get("cached_input_per_mtok") is None
                               else float(value["cached_input_per_mtok"])),
        source=value.get("source"),
        as_of=value.get("as_of"),
    )


def _check_card(card: Any, problems: _Problems) -> None:
    if not problems.keys("card", card, _CARD_KEYS):
        return
    problems.strings("card.languages", card.get("languages"), empty=False)
    problems.strings("card.modalities_in", card.get("modalities_in"), allowed=MODALITIES, empty=False)
    problems.strings("card.modalities_out", card.get("modalities_out"), allowed=MODALITIES, empty=False)
    problems.count("card.context_length", card.get("context_length"), optional=True)
    problems.count("card.max_output_tokens", card.get("max_output_tokens"), optional=True)
    problems.pattern("card.knowledge_cutoff", card.get("knowledge_cutoff"), _MONTH_OR_DATE,
                     "YYYY-MM or YYYY-MM-DD", optional=True)
    interfaces = card.get("interfaces")
    if problems.keys("card.interfaces", interfaces, _INTERFACE_KEYS):
        problems.text("card.interfaces.ui", interfaces.get("ui"), optional=True)
        problems.text("card.interfaces.developer_api", interfaces.get("developer_api"), optional=True)
        problems.strings("card.interfaces.third_party_api", interfaces.get("third_party_api"))
    fine_tuning = card.get("fine_tuning")
    if problems.keys("card.fine_tuning", fine_tuning, _FINE_TUNING_KEYS):
        for key in _FINE_TUNING_KEYS:
            problems.flag(f"card.fine_tuning.{key}", fine_tuning.get(key))
    components = card.get("components")
    if problems.keys("card.components", components, COMPONENTS):
        for key in COMPONENTS:
            value = components.get(key)
            # true/false, or the address where the component is published (which means true).
            if not isinstance(value, bool) and value is not None:
                problems.url(f"card.components.{key}", value)


def parse_entry(data: Any, filename: str) -> CatalogueEntry:
    """Validate one catalogue file's parsed JSON and build its entry; CatalogueError names `filename`."""
    problems = _Problems()
    if not problems.keys("the file", data, _TOP_KEYS):
        raise CatalogueError(f"Catalogue file {filename}: the file must hold a JSON object")

    entry_id = data.get("id")
    if not isinstance(entry_id, str) or not _ID.match(entry_id):
        problems.add("id must be lower-case letters, digits, '.', '_' or '-'")
    elif filename != f"{entry_id}.json":
        problems.add(f"id {entry_id!r} does not match the file name (expected {entry_id}.json)")
    for key in ("name", "developer", "notes"):
        problems.text(key, data.get(key))
    problems.pattern("released", data.get("released"), _DATE, "a YYYY-MM-DD date")
    problems.strings("aliases", data.get("aliases"))

    weights = data.get("weights")
    is_open = weights == "open"
    if weights not in WEIGHTS:
        problems.add(f"weights must be one of {', '.join(WEIGHTS)}")

    hub_id = data.get("hub_id")
    if is_open:
        if not isinstance(hub_id, str) or hub_id.count("/") != 1 or hub_id.strip() != hub_id:
            problems.add("hub_id must be 'owner/name' for an open model")
    elif hub_id is not None:
        problems.add("hub_id must be null for a closed model")

    license_ = data.get("license")
    if problems.keys("license", license_, _LICENSE_KEYS):
        license_id = license_.get("id")
        if not isinstance(license_id, str) or license_id != license_id.strip().lower() or not license_id:
            problems.add("license.id must be a lower-case Hub license id")
        problems.text("license.name", license_.get("name"), optional=True)
        problems.url("license.link", license_.get("link"))
        if license_id == "other" and (license_.get("name") is None or license_.get("link") is None):
            problems.add("license 'other' needs a name and a link")
        if weights == "closed" and license_id != PROPRIETARY:
            problems.add(f"license.id of a closed model must be {PROPRIETARY!r}")

    parameters = data.get("published_parameters")
    if problems.keys("published_parameters", parameters, _PARAMETER_KEYS):
        total, active = parameters.get("total"), parameters.get("active")
        problems.count("published_parameters.total", total, optional=not is_open)
        problems.count("published_parameters.active", active, optional=True)
        problems.url("published_parameters.source", parameters.get("source"), optional=total is None)
        if isinstance(total, int) and isinstance(active, int) and active > total:
            problems.add("published_parameters.active exceeds total")

    precision = data.get("published_precision")
    problems.text("published_precision", precision, optional=not is_open)

    config = data.get("config")
    if is_open:
        if not isinstance(config, dict):
            problems.add("config must be an object for an open model")
        else:
            problems.text("config.model_type", config.get("model_type"))
            problems.strings("config.architectures", config.get("architectures"), empty=False)
    elif config is not None:
        problems.add("config must be null for a closed model")

    _check_card(data.get("card"), problems)

    prices: list[ApiPrice] = []
    api = data.get("api")
    if not isinstance(api, list):
        problems.add("api must be a list")
    else:
        for index, item in enumerate(api):
            price = _price(f"api[{index}]", item, problems)
            if price is not None:
                prices.append(price)

    if problems.items:
        raise CatalogueError(f"Catalogue file {filename}: " + "; ".join(problems.items))
    return CatalogueEntry(
        id=entry_id, name=data["name"], developer=data["developer"], hub_id=hub_id,
        aliases=tuple(data["aliases"]), released=data["released"], weights=weights, license=license_,
        published_parameters=parameters, published_precision=precision, config=config, card=data["card"],
        api=tuple(prices), notes=data["notes"],
    )


# ---------------------------------------------------------------------------------------------
# Loading and lookup


def _key(name: str) -> str:
    return " ".join(name.strip().lower().split())


def _tail(name: str) -> str:
    """The name without an organisation prefix ('meta-llama/Llama-3.1-8B' -> 'llama-3.1-8b')."""
    return _key(name).rsplit("/", 1)[-1]


def _names(entry: CatalogueEntry) -> set[str]:
    names = {_key(entry.id), _key(entry.name)}
    for value in (entry.hub_id, *entry.aliases):
        if value:
            names.add(_key(value))
            names.add(_tail(value))
    return names


def _data_files() -> list[tuple[str, str]]:
    folder = resources.files("releasehub.analysis").joinpath("data").joinpath("models")
    files = []
    for item in folder.iterdir():
        if item.name.endswith(".json") and item.is_file():
            try:
                files.append((item.name, item.read_text(encoding="utf-8")))
            except OSError as exc:
                raise CatalogueError(f"Catalogue file {item.name}: cannot be read ({exc})") from exc
    return sorted(files)


def build_catalogue(files: list[tuple[str, str]]) -> tuple[Mapping[str, CatalogueEntry], Mapping[str, str]]:
    """Entries by id and the lookup index (normalised name -> id) from (file name, JSON text) pairs."""
    entries: dict[str, CatalogueEntry] = {}
    index: dict[str, str] = {}
    for filename, text in files:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CatalogueError(f"Catalogue file {filename}: invalid JSON ({exc})") from exc
        entry = parse_entry(data, filename)
        if entry.id in entries:
            raise CatalogueError(f"Catalogue file {filename}: id {entry.id!r} appears twice")
        for name in _names(entry):
            other = index.get(name)
            if other is not None and other != entry.id:
                raise CatalogueError(f"Catalogue file {filename}: name {name!r} already means {other!r}")
            index[name] = entry.id
        entries[entry.id] = entry
    if not entries:
        raise CatalogueError("The model catalogue holds no files")
    return MappingProxyType(entries), MappingProxyType(index)


@functools.lru_cache(maxsize=1)
def _catalogue() -> tuple[Mapping[str, CatalogueEntry], Mapping[str, str]]:
    return build_catalogue(_data_files())


def load_catalogue() -> Mapping[str, CatalogueEntry]:
    """Every reference model by id (read-only, loaded once per process)."""
    return _catalogue()[0]


def find_model(name: str) -> CatalogueEntry | None:
    """The entry whose id, Hub id, name or alias is `name`, ignoring case and any organisation prefix."""
    if not isinstance(name, str) or not name.strip():
        return None
    entries, index = _catalogue()
    found = index.get(_key(name)) or index.get(_tail(name))
    return None if found is None else entries[found]


def nearest_names(name: str, limit: int = 3) -> list[str]:
    """Catalogue ids closest to a misspelt `name` (by any of their names), best first."""
    import difflib

    entries, index = _catalogue()
    close = difflib.get_close_matches(_tail(name), list(index), n=limit * 4, cutoff=0.6)
    found: list[str] = []
    for match in close:
        if index[match] not in found:
            found.append(index[match])
    return found[:limit]


def catalogue_names() -> list[str]:
    """The ids of every reference model, sorted."""
    return sorted(load_catalogue())


__all__ = [
    "COMPONENTS",
    "ApiPrice",
    "CatalogueEntry",
    "CatalogueError",
    "build_catalogue",
    "catalogue_names",
    "find_model",
    "load_catalogue",
    "nearest_names",
    "parse_entry",
]
