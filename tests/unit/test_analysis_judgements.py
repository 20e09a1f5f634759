"""The access profile's judgements: MOF class, OSAID checklist, technical usability and utility."""

from __future__ import annotations

import json
from typing import Any

import pytest

from releasehub.access.licenses import license_from_card
from releasehub.analysis.openness import judge_openness
from releasehub.analysis.usability import HardwareNeed, InvalidOverrides, judge_usability, parse_overrides
from releasehub.analysis.utility import judge_utility
from releasehub.repos.cards import parse_card

# ---------------------------------------------------------------------------------------------
# Realistic repos

CLASS_III_FILES = {
    "README.md": 4_812,
    "config.json": 654,
    "generation_config.json": 184,
    "model-00001-of-00002.safetensors": 4_976_698_672,
    "model-00002-of-00002.safetensors": 2_239_133_512,
    "model.safetensors.index.json": 23_950,
    "tokenizer.json": 9_085_657,
    "tokenizer_config.json": 50_977,
    "DATA_CARD.md": 7_310,
    "samples/story_prompt_1.txt": 2_114,
    "LICENSE": 11_357,
}
CLASS_II_FILES = CLASS_III_FILES | {
    "train.py": 18_220,
    "inference.py": 3_481,
    "eval/run_eval.py": 6_004,
    "eval/data/questions.jsonl": 881_203,
    "requirements.txt": 212,
}
CLASS_I_FILES = CLASS_II_FILES | {
    "preprocess_corpus.py": 9_870,
    "checkpoints/step-10000/model.safetensors": 7_215_000_000,
    "checkpoints/step-20000/model.safetensors": 7_215_000_000,
}
MODEL_INDEX = [
    {
        "name": "acme-7b",
        "results": [
            {
                "task": {"type": "text-generation", "name": "Text Generation"},
                "dataset": {"name": "MMLU", "type": "cais/mmlu", "config": "all", "split": "test"},
                "metrics": [{"type": "acc", "value": 63.8, "name": "accuracy"}],
            }
        ],
    }
]
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "max_position_embeddings": 8192,
    "rope_theta": 500000.0,
    "vocab_size": 128256,
}
BODY = """# Acme 7B

Acme 7B is a decoder-only language model for English and French.

Technical report: https://arxiv.org/abs/2501.01234

## How to use

```python
# load it with transformers
from transformers import pipeline
```

## Evaluation

| Benchmark | Acme 7B |
| --- | --- |
| MMLU | 63.8 |
| GSM8K | 51.2 |
"""
RICH_DATA_SECTION = """
## Training Data

The model was pretrained on 2.1 trillion tokens of English and French text collected from public web
crawls (Common Crawl snapshots from 2019 to 2024), Wikipedia, public-domain books and permissively
licensed source code. Documents were filtered for quality with a classifier, deduplicated with MinHash and
selected to balance domains. No personal data was labelled; the instruction data was annotated by paid
contractors and is described with its sources in the data card.
"""
BIBTEX = """
## Citation

```bibtex
@inproceedings{acme2025,
  title = {Acme: An Open Language Model},
  booktitle = {Proceedings of ACL 2025},
}
```
"""


def card(license: str | list[str] | None = "apache-2.0", **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model-index": MODEL_INDEX,
        "language": ["en", "fr"],
        "pipeline_tag": "text-generation",
        "library_name": "transformers",
    }
    if license is not None:
        out["license"] = license
    return out | extra


def openness(
    files: dict[str, int],
    card_data: dict[str, Any] | None,
    body: str = BODY,
    overrides: dict[str, Any] | None = None,
    catalogue: dict[str, Any] | None = None,
    config: dict[str, Any] | None = CONFIG,
    **kwargs: Any,
) -> Any:
    return judge_openness(
        files,
        card_data,
        body,
        config,
        license_from_card(card_data),
        overrides,
        catalogue_components=catalogue,
        **kwargs,
    )


CLAUDE_COMPONENTS = {
    "training_code": False,
    "inference_code": None,
    "technical_report": None,
    "research_paper": None,
    "evaluation_results": True,
    "model_card": True,
    "data_card": False,
    "datasets": False,
    "intermediate_checkpoints": False,
}
CLASS_III_MISSING = [
    "Model architecture",
    "Model parameters (final)",
    "Technical report",
    "Evaluation results",
    "Model card",
    "Data card",
    "Sample model outputs",
]
CLASS_II_NEEDS = [
    "Training code",
    "Inference code",
    "Evaluation code",
    "Evaluation data",
    "Supporting libraries and tools",
]
CLASS_I_NEEDS = ["Research paper", "Datasets", "Data preprocessing code", "Intermediate model parameters"]


# ---------------------------------------------------------------------------------------------
# Model Openness Framework


@pytest.mark.parametrize(
    ("label", "files", "card_data", "body", "overrides", "mof_class", "missing", "reason"),
    [
        (
            "apache weights, config, eval results, data card, samples",
            CLASS_III_FILES,
            card(),
            BODY,
            None,
            "III",
            CLASS_II_NEEDS,
            (
                "Class III — Open Model: every Class III component is released under an open license; "
                "Class II also needs "
                "the training code, inference code, evaluation code, evaluation data and supporting "
                "libraries and tools."
            ),
        ),
        (
            "plus training, inference and eval code, eval data, requirements",
            CLASS_II_FILES,
            card(),
            BODY,
            None,
            "II",
            CLASS_I_NEEDS,
            (
                "Class II — Open Tooling: every Class II component is released under an open license; "
                "Class I also needs "
                "the research paper, datasets, data preprocessing code and intermediate model parameters."
            ),
        ),
        (
            "plus datasets, paper, preprocessing code, checkpoints",
            CLASS_I_FILES,
            card(datasets=["HuggingFaceFW/fineweb", "wikimedia/wikipedia"]),
            BODY + BIBTEX,
            None,
            "I",
            [],
            "Class I — Open Science: every component is released under an open license of the right kind.",
        ),
        (
            "llama 3.1 license",
            CLASS_I_FILES,
            card("llama3.1", datasets=["HuggingFaceFW/fineweb"]),
            BODY + BIBTEX,
            None,
            None,
            CLASS_III_MISSING,
            (
                "Not Class III: the Llama 3.1 Community License Agreement restricts fields of use, so the "
                "parameters are "
                "not under an open license."
            ),
        ),
        (
            "gemma via license_name",
            CLASS_III_FILES,
            card("other", license_name="gemma-terms-of-use"),
            BODY,
            None,
            None,
            CLASS_III_MISSING,
            (
                "Not Class III: the Gemma Terms of Use restricts fields of use, so the parameters are not "
                "under an open "
                "license."
            ),
        ),
        (
            "no license",
            CLASS_III_FILES,
            card(None),
            BODY,
            None,
            None,
            CLASS_III_MISSING,
            "Not Class III: no license is stated, so the parameters are not under an open license.",
        ),
        (
            "bsd-3-clause: open parameters and code, but not an open content license",
            CLASS_III_FILES,
            card("bsd-3-clause"),
            BODY,
            None,
            None,
            ["Technical report", "Evaluation results", "Model card", "Data card", "Sample model outputs"],
            (
                "Not Class III: the release has no open license of the right kind for the technical "
                "report, evaluation "
                "results, model card, data card and sample model outputs."
            ),
        ),
        (
            "no data card and no samples",
            {
                k: v
                for k, v in CLASS_III_FILES.items()
                if k not in ("DATA_CARD.md", "samples/story_prompt_1.txt")
            },
            card(),
            BODY,
            None,
            None,
            ["Data card", "Sample model outputs"],
            "Not Class III: the release lacks the data card and sample model outputs.",
        ),
        (
            "releaser points to a data card elsewhere",
            {k: v for k, v in CLASS_III_FILES.items() if k != "DATA_CARD.md"},
            card(),
            BODY,
            {"components": {"data_card": "https://acme.example/data-card"}},
            "III",
            CLASS_II_NEEDS,
            None,
        ),
        (
            "releaser overrides the card's model-index",
            CLASS_III_FILES,
            card(),
            "Acme 7B.\n\nhttps://arxiv.org/abs/2501.01234",
            {"components": {"evaluation_results": False}},
            None,
            ["Evaluation results"],
            "Not Class III: the release lacks the evaluation results.",
        ),
        (
            "training code under a non-commercial license",
            CLASS_II_FILES,
            card(),
            BODY,
            {"component_licenses": {"training_code": "CC-BY-NC-4.0"}},
            "III",
            ["Training code"],
            None,
        ),
    ],
)
def test_mof_class(
    label: str,
    files: dict[str, int],
    card_data: dict[str, Any],
    body: str,
    overrides: dict[str, Any] | None,
    mof_class: str | None,
    missing: list[str],
    reason: str | None,
) -> None:
    result = openness(files, card_data, body, overrides).mof
    assert result.mof_class == mof_class, label
    assert result.missing_for_next_class == missing, label
    if reason is not None:
        assert result.reason == reason, label
    assert (
        result.label
        == {
            "I": "Class I — Open Science",
            "II": "Class II — Open Tooling",
            "III": "Class III — Open Model",
            None: "Not classed",
        }[mof_class]
    )


def test_component_detection_records_source_and_evidence() -> None:
    components = {
        c.id: c
        for c in openness(
            CLASS_I_FILES, card(datasets=["HuggingFaceFW/fineweb"]), BODY + BIBTEX
        ).mof.components
    }
    seen = {
        cid: (c.present, c.open_license, c.license, c.source, c.evidence) for cid, c in components.items()
    }
    assert seen == {
        "model_architecture": (True, True, "apache-2.0", "files", "config.json"),
        "model_parameters": (True, True, "apache-2.0", "files", "model-00001-of-00002.safetensors"),
        "technical_report": (True, True, "apache-2.0", "card", "https://arxiv.org/abs/2501.01234"),
        "evaluation_results": (True, True, "apache-2.0", "card", "model-index"),
        "model_card": (True, True, "apache-2.0", "card", "README.md"),
        "data_card": (True, True, "apache-2.0", "files", "DATA_CARD.md"),
        "sample_outputs": (True, True, "apache-2.0", "files", "samples/story_prompt_1.txt"),
        "training_code": (True, True, "apache-2.0", "files", "train.py"),
        "inference_code": (True, True, "apache-2.0", "files", "inference.py"),
        "evaluation_code": (True, True, "apache-2.0", "files", "eval/run_eval.py"),
        "evaluation_data": (True, True, "apache-2.0", "files", "eval/data/questions.jsonl"),
        "supporting_libraries": (True, True, "apache-2.0", "files", "requirements.txt"),
        "research_paper": (True, True, "apache-2.0", "card", "BibTeX @inproceedings in README.md"),
        "datasets": (True, True, "apache-2.0", "card", "datasets: HuggingFaceFW/fineweb"),
        "data_preprocessing_code": (True, True, "apache-2.0", "files", "preprocess_corpus.py"),
        "intermediate_parameters": (
            True,
            True,
            "apache-2.0",
            "files",
            "checkpoints/step-10000/model.safetensors",
        ),
    }
    assert [c.required_for for c in components.values()] == ["III"] * 7 + ["II"] * 5 + ["I"] * 4


def test_components_from_card_links_and_tags() -> None:
    body = """# Acme 7B

## Training

We trained with our open recipe at https://github.com/acme/acme-train.

## Training Data

The pipeline that filtered the corpus: https://github.com/acme/data-pipeline

## Quickstart

Serving scripts live at https://github.com/acme/acme-serve.

Evaluation code: https://github.com/acme/evals

## Paper

Read the paper at https://openreview.net/forum?id=abc123.

```bash
# Training: not a heading, inside a code fence
```
"""
    components = {
        c.id: c
        for c in openness(
            {"model.safetensors": 1}, card(tags=["arxiv:2501.01234"]), body, config=None
        ).mof.components
    }
    found = {cid: c.evidence for cid, c in components.items() if c.present}
    assert found == {
        "model_parameters": "model.safetensors",
        "technical_report": "https://arxiv.org/abs/2501.01234",
        "evaluation_results": "model-index",
        "model_card": "README.md",
        "training_code": "https://github.com/acme/acme-train",
        "inference_code": "https://github.com/acme/acme-serve",
        "evaluation_code": "https://github.com/acme/evals",
        "research_paper": "https://openreview.net/forum?id=abc123",
        "data_preprocessing_code": "https://github.com/acme/data-pipeline",
    }
    assert {components[c].source for c in found} == {"files", "card"}


def test_card_text_with_front_matter_is_read_as_markdown() -> None:
    readme = "---\nlicense: apache-2.0\nmodel-index: []\n---\n" + BODY
    card_data, error = parse_card(readme)
    assert error is None and card_data is not None
    components = {
        c.id: c
        for c in judge_openness(
            CLASS_III_FILES, card_data, readme, CONFIG, license_from_card(card_data), None
        ).mof.components
    }
    assert components["evaluation_results"].evidence == "README.md section 'evaluation'"
    assert components["technical_report"].present is True


def test_closed_catalogue_model_is_never_classed() -> None:
    result = openness({}, None, "", catalogue=CLAUDE_COMPONENTS, config=None)
    assert result.mof.mof_class is None
    assert result.mof.reason == (
        "Not Class III: the model parameters are not released, so there is no open model to class."
    )
    components = {c.id: c for c in result.mof.components}
    assert (components["evaluation_results"].present, components["evaluation_results"].source) == (
        True,
        "catalogue",
    )
    assert (components["data_card"].present, components["data_card"].source) == (False, "catalogue")
    assert (components["intermediate_parameters"].present, components["intermediate_parameters"].source) == (
        False,
        "catalogue",
    )
    assert (components["technical_report"].present, components["technical_report"].source) == (
        False,
        "default",
    )
    assert components["model_parameters"].open_license is None
    assert result.osi.verdict == "does not meet"
    items = {i.id: i for i in result.osi.items}
    assert (items["parameters"].met, items["parameters"].note) == (
        False,
        "The model parameters are not released.",
    )
    assert items["freedom_study"].met is False


def test_open_catalogue_model_counts_its_parameters() -> None:
    components = {
        "training_code": False,
        "inference_code": "https://github.com/QwenLM/Qwen3",
        "technical_report": "https://arxiv.org/abs/2505.09388",
        "research_paper": None,
        "evaluation_results": True,
        "model_card": True,
        "data_card": False,
        "datasets": False,
        "intermediate_checkpoints": False,
    }
    result = openness({}, {"license": "apache-2.0"}, "", catalogue=components)
    by_id = {c.id: c for c in result.mof.components}
    assert (by_id["model_parameters"].present, by_id["model_parameters"].source) == (True, "catalogue")
    assert (by_id["inference_code"].evidence, by_id["inference_code"].open_license) == (
        "https://github.com/QwenLM/Qwen3",
        True,
    )
    assert result.mof.mof_class is None
    assert result.mof.reason == "Not Class III: the release lacks the data card and sample model outputs."
    explicit = openness({}, {"license": "apache-2.0"}, "", catalogue=components, weights_available=False)
    assert (explicit.mof.components[1].id, explicit.mof.components[1].present) == ("model_parameters", False)


# ---------------------------------------------------------------------------------------------
# OSI Open Source AI Definition 1.0

MIT_COMPLETE = CLASS_I_FILES | {"eval/evaluate.py": 4_000}


@pytest.mark.parametrize(
    ("label", "files", "card_data", "body", "catalogue", "verdict", "unmet"),
    [
        ("mit, data card and every piece of code", MIT_COMPLETE, card("mit"), BODY, None, "meets", {}),
        (
            "mit, data information in the card",
            {k: v for k, v in MIT_COMPLETE.items() if k != "DATA_CARD.md"},
            card("mit"),
            BODY + RICH_DATA_SECTION,
            None,
            "meets",
            {},
        ),
        (
            "mit, no data information anywhere",
            {k: v for k, v in MIT_COMPLETE.items() if k != "DATA_CARD.md"},
            card("mit"),
            BODY,
            None,
            "cannot tell",
            {"data_information": None},
        ),
        (
            "mit, a two-line training-data section",
            {k: v for k, v in MIT_COMPLETE.items() if k != "DATA_CARD.md"},
            card("mit"),
            BODY + "\n## Training data\n\nWeb text and books.\n",
            None,
            "cannot tell",
            {"data_information": None},
        ),
        (
            "mit, catalogue says no data card",
            {k: v for k, v in MIT_COMPLETE.items() if k != "DATA_CARD.md"},
            card("mit"),
            BODY,
            {"data_card": False},
            "does not meet",
            {"data_information": False},
        ),
        (
            "mit weights only",
            {"README.md": 10, "config.json": 600, "model.safetensors": 10**9},
            card("mit"),
            BODY,
            None,
            "cannot tell",
            {
                "data_information": None,
                "code_data_processing": None,
                "code_training": None,
                "code_validation": None,
                "code_inference": None,
                "code_supporting_libraries": None,
            },
        ),
        (
            "cc-by-4.0 parameters",
            MIT_COMPLETE,
            card("cc-by-4.0"),
            BODY,
            None,
            "does not meet",
            {
                "parameters": None,
                "code_data_processing": False,
                "code_training": False,
                "code_validation": False,
                "code_inference": False,
                "code_supporting_libraries": False,
                "code_architecture": False,
            },
        ),
        (
            "llama 3.1",
            MIT_COMPLETE,
            card("llama3.1"),
            BODY,
            None,
            "does not meet",
            {
                "freedom_use": False,
                "freedom_modify": False,
                "freedom_share": False,
                "parameters": False,
                "code_data_processing": False,
                "code_training": False,
                "code_validation": False,
                "code_inference": False,
                "code_supporting_libraries": False,
                "code_architecture": False,
            },
        ),
        (
            "a license outside the catalogue",
            MIT_COMPLETE,
            card("other", license_name="Acme Model License"),
            BODY,
            None,
            "does not meet",
            {
                "freedom_use": None,
                "freedom_study": None,
                "freedom_modify": None,
                "freedom_share": None,
                "parameters": False,
                "code_data_processing": False,
                "code_training": False,
                "code_validation": False,
                "code_inference": False,
                "code_supporting_libraries": False,
                "code_architecture": False,
            },
        ),
    ],
)
def test_osi_checklist(
    label: str,
    files: dict[str, int],
    card_data: dict[str, Any],
    body: str,
    catalogue: dict[str, Any] | None,
    verdict: str,
    unmet: dict[str, bool | None],
) -> None:
    result = openness(files, card_data, body, catalogue=catalogue).osi
    assert result.verdict == verdict, label
    assert {i.id: i.met for i in result.items if i.met is not True} == unmet, label
    assert [i.id for i in result.items] == [
        "freedom_use",
        "freedom_study",
        "freedom_modify",
        "freedom_share",
        "data_information",
        "code_data_processing",
        "code_training",
        "code_validation",
        "code_inference",
        "code_supporting_libraries",
        "code_architecture",
        "parameters",
    ]


def test_osi_items_say_why() -> None:
    items = {i.id: i for i in openness(MIT_COMPLETE, card("mit"), BODY).osi.items}
    assert (items["data_information"].source, items["data_information"].evidence) == ("files", "DATA_CARD.md")
    assert items["freedom_use"].note == "The MIT License is OSI-approved."
    assert (items["code_training"].evidence, items["code_training"].note) == (
        "train.py",
        "Released under an OSI-approved license.",
    )

    without_data_card = {k: v for k, v in MIT_COMPLETE.items() if k != "DATA_CARD.md"}
    thin = {
        i.id: i
        for i in openness(
            without_data_card, card("mit"), BODY + "\n## Training data\n\nWeb text and books.\n"
        ).osi.items
    }
    assert thin["data_information"].note == (
        "The card's training-data section is brief and does not cover selection, labelling, scope."
    )
    vague = " ".join(["We used a very large and diverse body of text for this model."] * 5)
    long_but_vague = {
        i.id: i
        for i in openness(without_data_card, card("mit"), BODY + f"\n## Training data\n\n{vague}\n").osi.items
    }
    assert (long_but_vague["data_information"].met, long_but_vague["data_information"].note) == (
        None,
        "The card's training-data section does not cover provenance, selection, labelling, scope.",
    )
    rich = {i.id: i for i in openness(without_data_card, card("mit"), BODY + RICH_DATA_SECTION).osi.items}
    assert (rich["data_information"].source, rich["data_information"].evidence) == (
        "card",
        "README.md section 'training data'",
    )
    llama = {i.id: i for i in openness(MIT_COMPLETE, card("llama3.1"), BODY).osi.items}
    assert llama["freedom_use"].note == (
        "The Llama 3.1 Community License Agreement restricts fields of use, makes commercial use "
        "conditional, "
        "needs a separate license above 700,000,000 monthly active users."
    )
    assert llama["code_training"].note == "Released under llama3.1, which is not OSI-approved."
    none = {i.id: i for i in openness(MIT_COMPLETE, card(None), BODY).osi.items}
    assert (none["freedom_share"].met, none["freedom_share"].source) == (False, "default")
    assert none["parameters"].note == "No license is stated for the parameters."


# ---------------------------------------------------------------------------------------------
# Overrides


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            {"colour": "blue"},
            (
                "unknown key 'access_profile.colour' (allowed: languages, modalities_in, modalities_out, "
                "context_length, "
                "max_output_tokens, knowledge_cutoff, interfaces, fine_tuning, components, "
                "component_licenses)"
            ),
        ),
        (
            {"interfaces": {"chat": True}},
            "unknown key 'access_profile.interfaces.chat' (allowed: ui, developer_api, third_party_api)",
        ),
        (
            {"fine_tuning": {"lora": True}},
            "unknown key 'access_profile.fine_tuning.lora' (allowed: api, weights)",
        ),
        ({"context_length": 0}, "access_profile.context_length: Input should be greater than 0"),
        (
            {"languages": ["en", "English (US)"]},
            (
                "access_profile.languages: 'english (us)' is not an ISO 639 language code (such as 'en', "
                "'pt-br')"
            ),
        ),
        (
            {"modalities_in": ["smell"]},
            (
                "access_profile.modalities_in.0: Input should be 'text', 'code', 'image', "
                "'audio', 'video' or 'embedding'"
            ),
        ),
        (
            {"knowledge_cutoff": "last spring"},
            (
                "access_profile.knowledge_cutoff: give the knowledge cutoff as YYYY-MM, YYYY-MM-DD or "
                "'December 2023'"
            ),
        ),
        (
            {"components": {"weights_and_biases": True}},
            (
                "access_profile.components: unknown component "
                "'weights_and_biases' (allowed: model_architecture,"
            ),
        ),
    ],
)
def test_bad_overrides_are_a_clear_error(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidOverrides) as caught:
        parse_overrides(raw)
    assert str(caught.value).startswith("README.md: access_profile is not valid: ")
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)  # what the profile turns into a warning


def test_every_judgement_rejects_bad_overrides() -> None:
    bad = {"context_lenght": 4096}
    with pytest.raises(InvalidOverrides, match=r"unknown key 'access_profile\.context_lenght'"):
        judge_utility(card(), BODY, CONFIG, bad)
    with pytest.raises(InvalidOverrides, match=r"unknown key 'access_profile\.context_lenght'"):
        judge_usability(
            CLASS_III_FILES,
            card(),
            BODY,
            license_from_card(card()),
            bad,
            weights_available=True,
            hardware=None,
        )
    with pytest.raises(InvalidOverrides, match=r"unknown key 'access_profile\.context_lenght'"):
        openness(CLASS_III_FILES, card(), BODY, bad)
    with pytest.raises(InvalidOverrides, match="access_profile must be a mapping"):
        parse_overrides(["languages", "en"])  # type: ignore[arg-type]


def test_overrides_are_normalised() -> None:
    parsed = parse_overrides(
        {
            "languages": "EN",
            "knowledge_cutoff": "December 2023",
            "component_licenses": {"intermediate_checkpoints": " Apache-2.0 "},
            "components": {"weights": False},
        }
    )
    assert parsed.languages == ["en"]
    assert parsed.knowledge_cutoff == "2023-12"
    assert parsed.component_licenses == {"intermediate_parameters": "apache-2.0"}
    assert parsed.components == {"model_parameters": False}


# ---------------------------------------------------------------------------------------------
# Utility


def facts(result: Any) -> dict[str, tuple[Any, str, str | None]]:
    return {name: (fact.value, fact.source, fact.evidence) for name, fact in result}


def test_utility_from_card_and_config() -> None:
    body = BODY + "\n**Data Freshness:** The pretraining data has a cutoff of December 2023.\n"
    result = judge_utility(card(), body, CONFIG, None)
    assert facts(result) == {
        "languages": (["en", "fr"], "card", "language"),
        "modalities_in": (["text"], "card", "pipeline_tag: text-generation"),
        "modalities_out": (["text"], "card", "pipeline_tag: text-generation"),
        "context_length": (8192, "config", "config.json max_position_embeddings"),
        "max_output_tokens": (None, "default", None),
        "knowledge_cutoff": ("2023-12", "card", "cutoff of December 2023"),
    }
    assert json.loads(result.model_dump_json())["context_length"] == {
        "value": 8192,
        "source": "config",
        "evidence": "config.json max_position_embeddings",
    }


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        # Qwen2.5: YaRN stretches the 32k native window four times.
        (
            {
                "max_position_embeddings": 32768,
                "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768},
            },
            (
                131072,
                (
                    "config.json rope_scaling: YaRN factor 4 x original_max_position_embeddings 32768 "
                    "(max_position_embeddings 32768)"
                ),
            ),
        ),
        # DeepSeek V3: the YaRN window is already in max_position_embeddings.
        (
            {
                "max_position_embeddings": 163840,
                "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096},
            },
            (163840, "config.json max_position_embeddings"),
        ),
        # YaRN without an original length scales max_position_embeddings (as transformers does).
        (
            {"max_position_embeddings": 40960, "rope_parameters": {"rope_type": "yarn", "factor": 2.0}},
            (
                81920,
                (
                    "config.json rope_parameters: YaRN factor 2 x original_max_position_embeddings 40960 "
                    "(max_position_embeddings 40960)"
                ),
            ),
        ),
        # Llama 3.1's own scaling is not YaRN: the config's window stands.
        (
            {
                "max_position_embeddings": 131072,
                "rope_scaling": {
                    "rope_type": "llama3",
                    "factor": 8.0,
                    "original_max_position_embeddings": 8192,
                },
            },
            (131072, "config.json max_position_embeddings"),
        ),
        # A multimodal config keeps the language model's window in text_config.
        (
            {"vision_config": {"image_size": 896}, "text_config": {"max_position_embeddings": 131072}},
            (131072, "config.json text_config.max_position_embeddings"),
        ),
        ({"n_positions": 1024, "n_embd": 768}, (1024, "config.json n_positions")),
        ({"max_position_embeddings": "lots", "rope_scaling": "yarn"}, (None, None)),
    ],
)
def test_context_length_from_config(config: dict[str, Any], expected: tuple[int | None, str | None]) -> None:
    fact = judge_utility(None, "", config, None).context_length
    assert (fact.value, fact.evidence) == expected
    assert fact.source == ("config" if expected[0] else "default")


def test_context_length_from_gguf_and_overrides() -> None:
    gguf = {
        "general.architecture": "qwen2",
        "qwen2.context_length": 32768,
        "qwen2.rope.scaling.type": "yarn",
        "qwen2.rope.scaling.factor": 4.0,
        "qwen2.rope.scaling.original_context_length": 32768,
    }
    result = judge_utility(None, "", None, None, gguf_metadata=gguf)
    assert facts(result)["context_length"] == (
        131072,
        "files",
        "GGUF qwen2.rope.scaling: YaRN factor 4 x original 32768",
    )
    assert facts(result)["modalities_in"] == (["text"], "files", "GGUF general.architecture: qwen2")
    plain = judge_utility(
        None, "", None, None, gguf_metadata={"general.architecture": "llama", "llama.context_length": 8192}
    )
    assert facts(plain)["context_length"] == (8192, "files", "GGUF llama.context_length")
    stated = judge_utility(
        card(),
        BODY,
        CONFIG,
        {
            "context_length": 65536,
            "languages": ["de"],
            "modalities_in": ["image", "text"],
            "max_output_tokens": 4096,
            "knowledge_cutoff": "2024-03",
        },
        gguf_metadata=gguf,
    )
    assert facts(stated) == {
        "languages": (["de"], "releaser", "access_profile.languages"),
        "modalities_in": (["text", "image"], "releaser", "access_profile.modalities_in"),
        "modalities_out": (["text"], "card", "pipeline_tag: text-generation"),
        "context_length": (65536, "releaser", "access_profile.context_length"),
        "max_output_tokens": (4096, "releaser", "access_profile.max_output_tokens"),
        "knowledge_cutoff": ("2024-03", "releaser", "access_profile.knowledge_cutoff"),
    }


@pytest.mark.parametrize(
    ("card_data", "config", "inputs", "outputs"),
    [
        ({"pipeline_tag": "image-text-to-text"}, None, ["text", "image"], ["text"]),
        ({"pipeline_tag": "automatic-speech-recognition"}, None, ["audio"], ["text"]),
        ({"pipeline_tag": "text-to-image"}, None, ["text"], ["image"]),
        ({"pipeline_tag": "text-to-speech"}, None, ["text"], ["audio"]),
        ({"pipeline_tag": "feature-extraction"}, None, ["text"], ["embedding"]),
        (
            {"pipeline_tag": "text-generation"},
            {"vision_config": {}, "audio_config": {}},
            ["text", "image", "audio"],
            ["text"],
        ),
        (
            {},
            {"architectures": ["Gemma3ForConditionalGeneration"], "vision_config": {}},
            ["text", "image"],
            ["text"],
        ),
        ({"pipeline_tag": "image-classification"}, None, None, None),
        ({"pipeline_tag": ["text-generation"]}, None, None, None),
    ],
)
def test_modalities(
    card_data: dict[str, Any],
    config: dict[str, Any] | None,
    inputs: list[str] | None,
    outputs: list[str] | None,
) -> None:
    result = judge_utility(card_data, "", config, None)
    assert (result.modalities_in.value, result.modalities_out.value) == (inputs, outputs)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Knowledge cutoff: 2023-12", ("2023-12", "cutoff: 2023-12")),
        ("The model has a knowledge cutoff of December 2023.", ("2023-12", "cutoff of December 2023")),
        ("Its knowledge cut-off date is Sept. 2024", ("2024-09", "cut-off date is Sept. 2024")),
        (
            (
                "| Model | Params | Context length | Knowledge cutoff |\n| --- | --- | --- | --- |\n"
                "| Acme 7B | 7B | 128k | March 2024 |\n"
            ),
            ("2024-03", "table column 'Knowledge cutoff': March 2024"),
        ),
        ("A cutoff of 0.5 on the classifier score kept 2023 documents.", (None, None)),
    ],
)
def test_knowledge_cutoff_from_card_text(text: str, expected: tuple[str | None, str | None]) -> None:
    fact = judge_utility({}, text, None, None).knowledge_cutoff
    assert (fact.value, fact.evidence) == expected


def test_utility_from_catalogue_and_its_order() -> None:
    catalogue = {
        "languages": ["en"],
        "modalities_in": ["text", "image"],
        "modalities_out": ["text"],
        "context_length": 200000,
        "max_output_tokens": 8192,
        "knowledge_cutoff": "2024-04",
    }
    assert facts(judge_utility(None, "", None, None, catalogue_card=catalogue)) == {
        "languages": (["en"], "catalogue", "languages"),
        "modalities_in": (["text", "image"], "catalogue", "modalities_in"),
        "modalities_out": (["text"], "catalogue", "modalities_out"),
        "context_length": (200000, "catalogue", "context_length"),
        "max_output_tokens": (8192, "catalogue", "max_output_tokens"),
        "knowledge_cutoff": ("2024-04", "catalogue", "knowledge_cutoff"),
    }
    # The card and config win for languages and context; the catalogue wins for the cutoff.
    mixed = judge_utility(
        card(),
        "Knowledge cutoff: 2023-01. Maximum output length is 2,048 tokens.",
        CONFIG,
        None,
        catalogue_card={"languages": ["en"], "context_length": 200000, "knowledge_cutoff": "2024-04"},
    )
    assert facts(mixed)["languages"] == (["en", "fr"], "card", "language")
    assert facts(mixed)["context_length"][0] == 8192
    assert facts(mixed)["knowledge_cutoff"] == ("2024-04", "catalogue", "knowledge_cutoff")
    assert facts(mixed)["max_output_tokens"] == (2048, "card", "Maximum output length is 2,048")


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", ["en"]),
        (["en", "FR", "multilingual", "code", "zh-Hans", "en"], ["en", "fr", "zh-hans"]),
        (42, None),
        ([None, {"en": 1}], None),
    ],
)
def test_languages_from_card(language: Any, expected: list[str] | None) -> None:
    assert judge_utility({"language": language}, "", None, None).languages.value == expected


# ---------------------------------------------------------------------------------------------
# Technical usability


@pytest.mark.parametrize(
    ("hardware", "level", "explanation"),
    [
        (
            HardwareNeed(gpu="h100-80gb", gpus=1, nodes=1, fits_consumer_gpu=True, fits_laptop=True),
            "hobbyist (consumer GPU or laptop)",
            "The weights run on a laptop or one consumer GPU: a hobbyist can host them with a local runtime.",
        ),
        (
            HardwareNeed(gpu="h100-80gb", gpus=1, nodes=1, fits_consumer_gpu=True, fits_laptop=False),
            "hobbyist (consumer GPU or laptop)",
            "The weights run on one consumer GPU: a hobbyist can host them with a local runtime.",
        ),
        (
            HardwareNeed(gpu="h100-80gb", gpus=1, nodes=1, fits_consumer_gpu=False, fits_laptop=False),
            "practitioner (one data-centre GPU)",
            "Hosting the weights takes one h100-80gb: a practitioner with a data-centre GPU can run them.",
        ),
        (
            HardwareNeed(gpu="h100-80gb", gpus=4, nodes=1, fits_consumer_gpu=False, fits_laptop=False),
            "infrastructure team (multi-GPU node)",
            (
                "Hosting the weights takes 4 x h100-80gb in one node: tensor-parallel serving, an "
                "infrastructure team's job."
            ),
        ),
        (
            HardwareNeed(gpu="h100-80gb", gpus=16, nodes=2, fits_consumer_gpu=False, fits_laptop=False),
            "cluster operator (several nodes)",
            (
                "Hosting the weights takes 16 x h100-80gb over 2 nodes: multi-node serving, a cluster "
                "operator's job."
            ),
        ),
    ],
)
def test_technical_skill_from_hardware(hardware: HardwareNeed, level: str, explanation: str) -> None:
    skill = judge_usability(
        CLASS_III_FILES,
        card(),
        BODY,
        license_from_card(card()),
        None,
        weights_available=True,
        hardware=hardware,
    ).technical_skill
    assert (skill.level, skill.explanation) == (level, explanation)
    assert (skill.self_host_level, skill.self_host_explanation) == (level, explanation)


def test_technical_skill_from_interfaces() -> None:
    big = HardwareNeed(gpu="h100-80gb", gpus=16, nodes=2, fits_consumer_gpu=False, fits_laptop=False)
    hosted = judge_usability(
        CLASS_III_FILES,
        card(),
        BODY,
        license_from_card(card()),
        {"interfaces": {"ui": "https://chat.acme.example"}},
        weights_available=True,
        hardware=big,
    ).technical_skill
    assert (hosted.level, hosted.explanation) == (
        "no-code (hosted UI)",
        "No code needed: a hosted UI exists (https://chat.acme.example).",
    )
    assert hosted.self_host_level == "cluster operator (several nodes)"
    api = judge_usability(
        {},
        None,
        "",
        license_from_card(None),
        None,
        weights_available=False,
        hardware=None,
        catalogue_card={"interfaces": {"ui": None, "developer_api": "Acme API", "third_party_api": []}},
    ).technical_skill
    assert (api.level, api.explanation, api.self_host_level) == (
        "developer (API)",
        "Calling a hosted API takes basic programming (Acme API).",
        None,
    )
    nothing = judge_usability(
        {}, None, "", license_from_card(None), None, weights_available=False, hardware=None
    ).technical_skill
    assert (nothing.level, nothing.explanation) == (
        None,
        (
            "No way in is known: the weights are not released and no "
            "hosted UI or API is stated (a releaser can state one in "
            "access_profile.interfaces)."
        ),
    )
    unsized = judge_usability(
        CLASS_III_FILES, card(), BODY, license_from_card(card()), None, weights_available=True, hardware=None
    ).technical_skill
    assert (unsized.level, unsized.explanation) == (
        None,
        "The weights are released, but what hardware they need is unknown.",
    )


def test_interfaces_from_overrides_catalogue_card_and_files() -> None:
    catalogue = {
        "interfaces": {
            "ui": "Claude.ai",
            "developer_api": "Anthropic API",
            "third_party_api": ["Amazon Bedrock", "Google Cloud Vertex AI"],
        },
        "fine_tuning": {"weights": False, "api": False},
    }
    closed = judge_usability(
        {},
        None,
        "",
        license_from_card({"license": "proprietary"}),
        None,
        weights_available=False,
        hardware=None,
        catalogue_card=catalogue,
    )
    assert facts(closed.interfaces) == {
        "ui": (True, "catalogue", "Claude.ai"),
        "developer_api": (True, "catalogue", "Anthropic API"),
        "third_party_api": (True, "catalogue", "Amazon Bedrock, Google Cloud Vertex AI"),
        "library": (None, "default", None),
        "pipeline_tag": (None, "default", None),
    }
    assert (closed.fine_tunability.local.value, closed.fine_tunability.local.source) == (False, "catalogue")
    assert closed.fine_tunability.methods == []
    assert (closed.fine_tunability.api.value, closed.fine_tunability.api.source) == (False, "catalogue")

    stated = judge_usability(
        CLASS_III_FILES,
        card(),
        BODY + "\nTry it: https://huggingface.co/spaces/acme/chat\n",
        license_from_card(card()),
        {
            "interfaces": {"ui": False, "third_party_api": ["Together AI"]},
            "fine_tuning": {"api": "https://api.acme.example/fine-tune"},
        },
        weights_available=True,
        hardware=None,
        catalogue_card=catalogue,
    )
    assert facts(stated.interfaces) == {
        "ui": (False, "releaser", "access_profile.interfaces.ui"),
        "developer_api": (True, "catalogue", "Anthropic API"),
        "third_party_api": (True, "releaser", "Together AI"),
        "library": ("transformers", "card", "library_name"),
        "pipeline_tag": ("text-generation", "card", "pipeline_tag"),
    }
    assert (stated.fine_tunability.api.value, stated.fine_tunability.api.evidence) == (
        True,
        "https://api.acme.example/fine-tune",
    )

    from_text = judge_usability(
        {"model.Q4_K_M.gguf": 4_000_000_000},
        {},
        "Demo: https://huggingface.co/spaces/acme/chat",
        license_from_card(None),
        None,
        weights_available=True,
        hardware=None,
    )
    assert facts(from_text.interfaces)["ui"] == (True, "card", "https://huggingface.co/spaces/acme/chat")
    assert facts(from_text.interfaces)["library"] == ("gguf", "files", "model.Q4_K_M.gguf")
    assert facts(from_text.interfaces)["developer_api"] == (None, "default", None)
    assert from_text.fine_tunability.note == (
        "The weights can be adapted locally (full fine-tuning, or LoRA/QLoRA on less memory). Only GGUF "
        "files are "
        "here: fine-tune from the unquantised checkpoint. With no license stated, sharing a fine-tuned "
        "model is not "
        "permitted."
    )


def test_license_in_plain_language() -> None:
    none = judge_usability(
        CLASS_III_FILES,
        card(None),
        BODY,
        license_from_card(card(None)),
        None,
        weights_available=True,
        hardware=None,
    )
    assert none.license.stated is False
    assert (
        none.license.name,
        none.license.commercial_use,
        none.license.redistribution,
        none.license.source,
    ) == ("no license stated", "not granted", "not granted", "default")
    assert none.license.summary.startswith("No license stated: the card names none")
    assert (none.fine_tunability.derivatives.value, none.fine_tunability.derivatives.source) == (
        "not granted",
        "default",
    )

    llama_card = card("llama3.1")
    llama = judge_usability(
        CLASS_III_FILES,
        llama_card,
        BODY,
        license_from_card(llama_card),
        None,
        weights_available=True,
        hardware=None,
    )
    assert (
        llama.license.id,
        llama.license.family,
        llama.license.user_threshold,
        llama.license.osi_approved,
    ) == ("llama3.1", "community", 700_000_000, False)
    assert (llama.license.commercial_use, llama.license.train_on_outputs) == ("conditional", "conditional")
    assert len(llama.license.field_of_use_restrictions) == 6
    assert (
        "Above 700,000,000 monthly active users a separate license is needed." in llama.license.plain_language
    )
    assert llama.fine_tunability.derivatives.value == "conditional"
    assert llama.fine_tunability.derivative_naming is not None
    assert llama.fine_tunability.derivative_naming.endswith('must have names that begin with "Llama".')
    assert llama.fine_tunability.methods == ["full fine-tuning", "LoRA", "QLoRA"]

    apache = judge_usability(
        CLASS_III_FILES, card(), BODY, license_from_card(card()), None, weights_available=True, hardware=None
    )
    assert (apache.license.name, apache.license.url, apache.fine_tunability.derivatives.value) == (
        "Apache License 2.0",
        "https://www.apache.org/licenses/LICENSE-2.0",
        "allowed",
    )
    assert apache.license.plain_language[:3] == [
        "Commercial use: allowed.",
        "Redistribution: allowed.",
        "Training other models on its outputs: allowed.",
    ]

    custom_card = card(
        "other", license_name="Acme Model License", license_link="https://acme.example/license"
    )
    custom = judge_usability(
        CLASS_III_FILES,
        custom_card,
        BODY,
        license_from_card(custom_card),
        None,
        weights_available=True,
        hardware=None,
    )
    assert (custom.license.known, custom.license.commercial_use, custom.license.family) == (
        False,
        "unknown",
        "other",
    )
    assert custom.license.summary == (
        "The card names 'Acme Model License', which releasehub's license catalogue "
        "does not describe: read its text at https://acme.example/license before "
        "using the model."
    )
    assert custom.fine_tunability.derivatives.value == "unknown"


def test_usability_serialises_and_survives_bad_card_data() -> None:
    messy = {
        "license": 3,
        "library_name": ["x"],
        "pipeline_tag": {"a": 1},
        "language": 7,
        "model-index": "yes",
        "datasets": [None],
        "tags": "arxiv",
    }
    usability = judge_usability(
        {"weird": 1}, messy, None, license_from_card(messy), None, weights_available=False, hardware=None
    )
    assert usability.license.stated is False
    assert facts(usability.interfaces)["library"] == (None, "default", None)
    dumped = json.loads(usability.model_dump_json())
    assert dumped["technical_skill"]["level"] is None
    result = judge_openness({"weird": 1}, messy, None, {"architectures": 5}, license_from_card(messy), None)
    assert result.mof.mof_class is None
    assert json.loads(result.model_dump_json())["osi"]["verdict"] == "does not meet"
    utility = judge_utility(
        messy,
        None,
        {"max_position_embeddings": True, "text_config": "no"},
        None,
        gguf_metadata={"general.architecture": 3},
    )
    assert utility.context_length.value is None
