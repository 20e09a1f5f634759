"""The reference model catalogue: every file validates, lookups work, and the configs give the
published parameter counts when transformers builds them on the meta device (nothing is
downloaded and no memory is allocated for weights)."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from releasehub.access.licenses import CATALOGUE as LICENSES
from releasehub.analysis import catalogue as cat
from releasehub.analysis.catalogue import (
    CatalogueEntry,
    CatalogueError,
    build_catalogue,
    catalogue_names,
    find_model,
    load_catalogue,
    parse_entry,
)

PAPER_SOURCE = "Beyond Release"

# The models the catalogue must hold: the paper's four and the families most used today.
REQUIRED = (
    "llama-3.1-405b-instruct", "deepseek-v3", "gpt-4", "claude-3.5-sonnet",
    "llama-3.1-8b-instruct", "llama-3.1-70b-instruct", "llama-3.2-1b-instruct", "llama-3.2-3b-instruct",
    "llama-3.3-70b-instruct", "mistral-7b-instruct-v0.3", "mixtral-8x7b-instruct-v0.1",
    "mixtral-8x22b-instruct-v0.1", "mistral-nemo-instruct-2407", "qwen2.5-0.5b-instruct", "qwen2.5-7b-instruct",
    "qwen2.5-72b-instruct", "qwen3-8b", "qwen3-30b-a3b", "qwen3-235b-a22b", "gemma-2-9b-it", "gemma-2-27b-it",
    "gemma-3-27b-it", "phi-3-mini-4k-instruct", "phi-4", "deepseek-r1-distill-llama-8b",
)

# (input, output, cached input) in USD per 1M tokens, from the paper's Resourcing table.
PAPER_PRICES = {
    "llama-3.1-405b-instruct": (5.0, 16.0, None),
    "deepseek-v3": (0.27, 1.10, 0.07),
    "gpt-4": (10.0, 30.0, None),
    "claude-3.5-sonnet": (3.0, 15.0, None),
}

# Totals the model cards / the Hub's safetensors metadata give.
PUBLISHED_TOTALS = {
    "llama-3.1-8b-instruct": 8_030_261_248,
    "llama-3.1-70b-instruct": 70_553_706_496,
    "llama-3.1-405b-instruct": 405_853_388_800,
    "llama-3.2-1b-instruct": 1_235_814_400,
    "llama-3.2-3b-instruct": 3_212_749_824,
    "mistral-7b-instruct-v0.3": 7_248_023_552,
    "mixtral-8x7b-instruct-v0.1": 46_702_792_704,
    "mixtral-8x22b-instruct-v0.1": 140_630_071_296,
    "qwen2.5-0.5b-instruct": 494_032_768,
    "qwen2.5-7b-instruct": 7_615_616_512,
    "qwen2.5-72b-instruct": 72_706_203_648,
    "qwen3-8b": 8_190_735_360,
    "qwen3-30b-a3b": 30_532_122_624,
    "qwen3-235b-a22b": 235_093_634_560,
    "gemma-2-9b-it": 9_241_705_984,
    "gemma-2-27b-it": 27_227_128_320,
    "phi-3-mini-4k-instruct": 3_821_079_552,
    "phi-4": 14_659_507_200,
    "deepseek-v3": 671_000_000_000,
}


def _files() -> list[str]:
    folder = resources.files("releasehub.analysis").joinpath("data").joinpath("models")
    return sorted(item.name for item in folder.iterdir() if item.name.endswith(".json"))


def _open_entries() -> list[CatalogueEntry]:
    return [entry for entry in load_catalogue().values() if entry.is_open]


def _valid() -> dict:
    return load_catalogue()["llama-3.1-8b-instruct"].to_dict()


# ---------------------------------------------------------------------------------------------
# Loading and validation


def test_every_file_loads_and_validates():
    entries = load_catalogue()
    assert len(entries) == len(_files()) >= len(REQUIRED)
    assert sorted(f"{entry_id}.json" for entry_id in entries) == _files()
    assert catalogue_names() == sorted(entries)
    assert load_catalogue() is entries  # cached
    for entry in entries.values():
        assert isinstance(entry, CatalogueEntry)
        # Round trip through the file's shape gives the same entry.
        assert parse_entry(json.loads(json.dumps(entry.to_dict())), f"{entry.id}.json") == entry


def test_required_models_are_there():
    missing = [entry_id for entry_id in REQUIRED if entry_id not in load_catalogue()]
    assert not missing


def test_open_and_closed_entries_are_consistent():
    for entry in load_catalogue().values():
        if entry.is_open:
            assert entry.hub_id and entry.config and entry.total_parameters, entry.id
            assert entry.card["fine_tuning"]["weights"] is True, entry.id
            assert entry.published_precision in ("bf16", "fp16", "fp32", "fp8"), entry.id
        else:
            assert entry.hub_id is None and entry.config is None, entry.id
            assert entry.license["id"] == "proprietary", entry.id
            assert entry.card["fine_tuning"]["weights"] is False, entry.id


def test_license_ids_are_known_to_releasehub():
    for entry in load_catalogue().values():
        assert entry.license["id"] in LICENSES or entry.license["id"] == "proprietary", entry.id


def test_ids_unique_and_names_do_not_collide():
    seen: dict[str, str] = {}
    for entry in load_catalogue().values():
        for name in cat._names(entry):
            assert seen.setdefault(name, entry.id) == entry.id, (name, entry.id, seen[name])
    ids = [json.loads(resources.files("releasehub.analysis").joinpath(f"data/models/{f}").read_text())["id"]
           for f in _files()]
    assert len(set(ids)) == len(ids)


def test_published_totals():
    entries = load_catalogue()
    for entry_id, total in PUBLISHED_TOTALS.items():
        assert entries[entry_id].total_parameters == total, entry_id
    assert entries["deepseek-v3"].active_parameters == 37_000_000_000
    assert entries["llama-3.1-8b-instruct"].active_parameters == 8_030_261_248


def test_moe_active_counts_agree_with_their_configs():
    """Active = total minus the experts a token does not use; the published figures are rounded."""
    checked = 0
    for entry in _open_entries():
        config = entry.config
        experts = config.get("num_local_experts") or config.get("num_experts") or config.get("n_routed_experts")
        if not experts:
            assert entry.published_parameters["active"] is None, entry.id
            continue
        per_expert = 3 * config["hidden_size"] * (config.get("moe_intermediate_size") or config["intermediate_size"])
        moe_layers = config["num_hidden_layers"] - config.get("first_k_dense_replace", 0)
        unused = (experts - config["num_experts_per_tok"]) * per_expert * moe_layers
        expected = entry.total_parameters - unused
        assert entry.published_parameters["active"] == pytest.approx(expected, rel=0.025), entry.id
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("card"), "missing card"),
        (lambda d: d.update(colour="red"), "unknown keys colour"),
        (lambda d: d.update(weights="partly"), "weights must be one of"),
        (lambda d: d.update(id="Llama"), "id must be lower-case"),
        (lambda d: d.update(id="llama-3.1-8b"), "does not match the file name"),
        (lambda d: d.update(config=None), "config must be an object"),
        (lambda d: d["published_parameters"].update(total="8B"), "total must be a positive integer"),
        (lambda d: d["published_parameters"].update(active=10**12), "active exceeds total"),
        (lambda d: d["license"].update(id="other"), "needs a name and a link"),
        (lambda d: d.update(released="July 2024"), "YYYY-MM-DD"),
        (lambda d: d["card"]["components"].update(model_card="yes"), "https URL"),
        (lambda d: d["card"].update(modalities_in=["smell"]), "modalities_in may only hold"),
        (lambda d: d.update(api=[{"provider": "x", "input_per_mtok": None, "output_per_mtok": None,
                                  "cached_input_per_mtok": None, "source": "s", "as_of": None}]),
         "neither an input nor an output price"),
    ],
)
def test_malformed_entries_are_refused_naming_the_file(mutate, message):
    data = _valid()
    mutate(data)
    with pytest.raises(CatalogueError, match="llama-3.1-8b-instruct.json") as excinfo:
        parse_entry(data, "llama-3.1-8b-instruct.json")
    assert message in str(excinfo.value)


def test_closed_entries_may_not_carry_weights_facts():
    data = load_catalogue()["gpt-4"].to_dict()
    data["hub_id"] = "openai/gpt-4"
    data["license"]["id"] = "mit"
    with pytest.raises(CatalogueError, match=r"gpt-4\.json.*hub_id must be null.*must be 'proprietary'"):
        parse_entry(data, "gpt-4.json")


def test_bad_json_duplicates_and_collisions_are_refused():
    with pytest.raises(CatalogueError, match="broken.json: invalid JSON"):
        build_catalogue([("broken.json", "{")])
    text = json.dumps(_valid())
    with pytest.raises(CatalogueError, match="appears twice"):
        build_catalogue([("llama-3.1-8b-instruct.json", text)] * 2)
    other = _valid() | {"id": "my-llama", "name": "Mine", "hub_id": "me/my-llama", "aliases": ["Llama 3.1 8B"]}
    with pytest.raises(CatalogueError, match="my-llama.json: name 'llama 3.1 8b' already means"):
        build_catalogue([("llama-3.1-8b-instruct.json", text), ("my-llama.json", json.dumps(other))])
    with pytest.raises(CatalogueError, match="no files"):
        build_catalogue([])


# ---------------------------------------------------------------------------------------------
# Lookup


@pytest.mark.parametrize(
    "query, expected",
    [
        ("llama-3.1-405b-instruct", "llama-3.1-405b-instruct"),
        ("meta-llama/Llama-3.1-405B-Instruct", "llama-3.1-405b-instruct"),
        ("Llama 3.1 405B Instruct", "llama-3.1-405b-instruct"),
        ("Meta-Llama-3.1-405B-Instruct", "llama-3.1-405b-instruct"),
        ("meta-llama/Meta-Llama-3.1-405B-Instruct", "llama-3.1-405b-instruct"),
        ("  LLAMA-3.1-405B ", "llama-3.1-405b-instruct"),
        ("Llama-3.1-8B-Instruct", "llama-3.1-8b-instruct"),
        ("someone/llama-3.1-8b-instruct", "llama-3.1-8b-instruct"),
        ("deepseek-ai/DeepSeek-V3", "deepseek-v3"),
        ("DeepSeek V3", "deepseek-v3"),
        ("GPT-4", "gpt-4"),
        ("claude 3.5 sonnet", "claude-3.5-sonnet"),
        ("claude-3-5-sonnet-20241022", "claude-3.5-sonnet"),
        ("Qwen/Qwen3-30B-A3B", "qwen3-30b-a3b"),
        ("mistralai/Mixtral-8x22B-Instruct-v0.1", "mixtral-8x22b-instruct-v0.1"),
        ("google/gemma-3-27b-it", "gemma-3-27b-it"),
        ("microsoft/phi-4", "phi-4"),
    ],
)
def test_find_model(query, expected):
    found = find_model(query)
    assert found is not None and found.id == expected


@pytest.mark.parametrize("query", ["", "   ", "gpt-5", "meta-llama/Llama-9", "qwen"])
def test_find_model_unknown(query):
    assert find_model(query) is None


def test_find_model_every_declared_name():
    for entry in load_catalogue().values():
        for name in (entry.id, entry.name, entry.hub_id, *entry.aliases):
            if name:
                assert find_model(name) is entry, name
                assert find_model(name.upper()) is entry, name


# ---------------------------------------------------------------------------------------------
# The paper's four models


def test_paper_models_and_prices():
    entries = load_catalogue()
    for entry_id, (price_in, price_out, cached) in PAPER_PRICES.items():
        entry = entries[entry_id]
        paper = [p for p in entry.api if PAPER_SOURCE in p.source]
        assert len(paper) == 1, entry_id
        assert (paper[0].input_per_mtok, paper[0].output_per_mtok, paper[0].cached_input_per_mtok) == (
            price_in, price_out, cached), entry_id
    assert entries["llama-3.1-405b-instruct"].weights == "open"
    assert entries["deepseek-v3"].weights == "open"
    assert entries["deepseek-v3"].published_precision == "fp8"
    assert entries["gpt-4"].weights == "closed" and entries["claude-3.5-sonnet"].weights == "closed"
    assert entries["claude-3.5-sonnet"].card["context_length"] == 200_000


# ---------------------------------------------------------------------------------------------
# Configs against published counts (meta device: no weights, no download)


def _build_on_meta(config: dict):
    import torch
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    values = dict(config)
    values.pop("quantization_config", None)  # FP8 checkpoints: the architecture is what counts here
    model_type = values.pop("model_type")
    if model_type not in CONFIG_MAPPING:
        pytest.skip(f"transformers {transformers.__version__} does not know {model_type!r}")
    model_config = AutoConfig.for_model(model_type, **values)
    model_class = getattr(transformers, values["architectures"][0], None) or transformers.AutoModelForCausalLM
    with torch.device("meta"):
        if model_class is transformers.AutoModelForCausalLM:
            model = model_class.from_config(model_config)
        else:
            model = model_class(model_config)
    return model


@pytest.mark.slow
@pytest.mark.parametrize("entry_id", [entry.id for entry in _open_entries()])
def test_config_gives_the_published_total(entry_id):
    entry = load_catalogue()[entry_id]
    model = _build_on_meta(entry.config)
    built = sum(parameter.numel() for parameter in model.parameters())
    assert all(parameter.device.type == "meta" for parameter in model.parameters())
    # DeepSeek V3/R1: transformers does not build the multi-token-prediction module, and the
    # published 671B leaves it out too (the Hub checkpoint's 685B includes it).
    assert built == pytest.approx(entry.total_parameters, rel=0.005), (entry_id, built)
