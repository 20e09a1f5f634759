"""The license catalogue: well-formed entries, pinned facts, card resolution, acceptance texts."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from releasehub.access.licenses import (
    CATALOGUE,
    FAMILIES,
    PERMISSIONS,
    REPO_VERSION,
    LicenseTerms,
    ResolvedLicense,
    get_license,
    license_from_card,
    license_text_for_acceptance,
    terms_table,
)

DOCS = Path(__file__).resolve().parents[2] / "docs"

REQUIRED_IDS = {
    "apache-2.0", "mit", "bsd-3-clause", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0",
    "gpl-3.0", "llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4", "gemma", "openrail",
    "openrail-m", "creativeml-openrail-m", "bigscience-openrail-m", "bigscience-bloom-rail-1.0", "mrl",
    "mnpl", "other",
}
LLAMAS = ("llama2", "llama3", "llama3.1", "llama3.2", "llama3.3", "llama4")


def test_catalogue_covers_the_required_ids() -> None:
    assert REQUIRED_IDS <= set(CATALOGUE)


@pytest.mark.parametrize("license_id", sorted(CATALOGUE))
def test_every_entry_is_well_formed(license_id: str) -> None:
    terms = CATALOGUE[license_id]
    assert isinstance(terms, LicenseTerms)
    assert terms.id == license_id == license_id.strip().lower()
    assert terms.family in FAMILIES
    assert {terms.commercial_use, terms.train_on_outputs, terms.redistribution} <= set(PERMISSIONS)
    assert terms.url.startswith("https://") and " " not in terms.url
    assert terms.name and terms.version and terms.summary.strip()
    assert isinstance(terms.osi_approved, bool)
    assert terms.user_threshold is None or (isinstance(terms.user_threshold, int) and terms.user_threshold > 0)
    assert isinstance(terms.field_of_use_restrictions, tuple)
    assert all(isinstance(r, str) and r.strip() for r in terms.field_of_use_restrictions)
    # Only OSI-approved licenses may claim to be; none of the custom model licenses are.
    if terms.family in ("community", "responsible-ai", "non-commercial", "research-only", "other"):
        assert not terms.osi_approved


def test_ids_are_unique_and_the_catalogue_is_read_only() -> None:
    assert len({t.id for t in CATALOGUE.values()}) == len(CATALOGUE)
    with pytest.raises(TypeError):
        CATALOGUE["mit"] = CATALOGUE["apache-2.0"]  # type: ignore[index]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CATALOGUE["mit"].commercial_use = "forbidden"  # type: ignore[misc]


def test_malformed_entries_are_refused() -> None:
    mit = CATALOGUE["mit"]
    changes: tuple[dict[str, Any], ...] = (
        {"id": "MIT"}, {"family": "friendly"}, {"commercial_use": "yes"}, {"train_on_outputs": "maybe"},
        {"url": "http://example.com"}, {"user_threshold": 0},
    )
    for change in changes:
        with pytest.raises(ValueError):
            dataclasses.replace(mit, **change)


# ---------------------------------------------------------------------------------------------
# Facts pinned


@pytest.mark.parametrize("license_id", LLAMAS)
def test_llama_licenses_need_a_separate_license_above_700m_users(license_id: str) -> None:
    terms = CATALOGUE[license_id]
    assert terms.user_threshold == 700_000_000
    assert terms.commercial_use == "conditional"
    assert terms.family == "community"
    assert not terms.osi_approved


def test_llama31_terms() -> None:
    terms = CATALOGUE["llama3.1"]
    assert terms.version == "2024-07-23"
    assert terms.train_on_outputs == "conditional"
    assert terms.attribution is not None and "Built with Llama" in terms.attribution
    assert terms.derivative_naming is not None and '"Llama"' in terms.derivative_naming


def test_llama2_and_llama3_forbid_improving_other_models_with_outputs() -> None:
    assert CATALOGUE["llama2"].train_on_outputs == "forbidden"
    assert CATALOGUE["llama3"].train_on_outputs == "forbidden"
    assert CATALOGUE["llama2"].derivative_naming is None
    naming = CATALOGUE["llama3"].derivative_naming
    assert naming is not None and '"Llama 3"' in naming
    for later in ("llama3.1", "llama3.2", "llama3.3", "llama4"):
        assert CATALOGUE[later].train_on_outputs == "conditional"


def test_llama_multimodal_eu_clause_is_listed_where_the_policy_has_it() -> None:
    for license_id in ("llama3.2", "llama3.3", "llama4"):
        assert any("European Union" in r for r in CATALOGUE[license_id].field_of_use_restrictions)
    for license_id in ("llama2", "llama3", "llama3.1"):
        assert not any("European Union" in r for r in CATALOGUE[license_id].field_of_use_restrictions)


def test_permissive_licenses() -> None:
    for license_id in ("mit", "apache-2.0", "bsd-3-clause"):
        terms = CATALOGUE[license_id]
        assert terms.commercial_use == "allowed"
        assert terms.osi_approved
        assert terms.user_threshold is None
        assert terms.field_of_use_restrictions == ()
    apache = CATALOGUE["apache-2.0"].attribution
    assert apache is not None and "NOTICE" in apache


def test_non_commercial_and_mistral_licenses_forbid_commercial_use() -> None:
    for license_id in ("cc-by-nc-4.0", "cc-by-nc-sa-4.0", "mrl", "mnpl"):
        assert CATALOGUE[license_id].commercial_use == "forbidden"
        assert not CATALOGUE[license_id].osi_approved
    assert CATALOGUE["mrl"].family == "research-only"
    assert CATALOGUE["cc-by-nc-4.0"].family == "non-commercial"


def test_gemma_has_no_user_threshold_and_treats_distillation_as_a_derivative() -> None:
    gemma = CATALOGUE["gemma"]
    assert gemma.user_threshold is None
    assert gemma.train_on_outputs == "conditional"
    assert gemma.redistribution == "conditional"
    assert not gemma.osi_approved


def test_rail_licenses_carry_use_restrictions() -> None:
    for license_id in ("creativeml-openrail-m", "bigscience-openrail-m", "bigscience-bloom-rail-1.0"):
        terms = CATALOGUE[license_id]
        assert terms.family == "responsible-ai"
        assert terms.field_of_use_restrictions
        assert terms.redistribution == "conditional"
        assert not terms.osi_approved


def test_other_marks_every_term_conditional() -> None:
    other = CATALOGUE["other"]
    assert (other.commercial_use, other.train_on_outputs, other.redistribution) == ("conditional",) * 3


# ---------------------------------------------------------------------------------------------
# Look-ups and model cards


def test_get_license_ignores_case_and_spaces() -> None:
    assert get_license("Apache-2.0") is CATALOGUE["apache-2.0"]
    assert get_license("  LLAMA3.1 ") is CATALOGUE["llama3.1"]
    assert get_license("no-such-license") is None
    assert get_license("") is None


def test_card_with_a_known_id() -> None:
    resolved = license_from_card({"license": "Llama3.1"})
    assert resolved == ResolvedLicense(
        id="llama3.1", terms=CATALOGUE["llama3.1"], name=CATALOGUE["llama3.1"].name,
        link=CATALOGUE["llama3.1"].url, known=True, ids=("llama3.1",),
    )


def test_card_link_wins_over_the_catalogue_address() -> None:
    resolved = license_from_card({"license": "apache-2.0", "license_link": "LICENSE"})
    assert resolved.link == "LICENSE"
    assert resolved.terms is CATALOGUE["apache-2.0"]


def test_card_with_other_and_a_name_and_link() -> None:
    card = {"license": "other", "license_name": "acme-model-license", "license_link": "https://acme.test/l"}
    resolved = license_from_card(card)
    assert resolved.id == "other"
    assert resolved.known
    assert resolved.terms is CATALOGUE["other"]
    assert resolved.name == "acme-model-license"
    assert resolved.link == "https://acme.test/l"


def test_card_with_other_and_no_link_does_not_point_at_the_hub_list() -> None:
    resolved = license_from_card({"license": "other", "license_name": "acme"})
    assert resolved.link is None


@pytest.mark.parametrize("name,expected", [("mrl", "mrl"), ("MNPL", "mnpl"), ("llama4", "llama4"),
                                           ("gemma-terms-of-use", "gemma")])
def test_card_with_other_and_a_catalogued_name(name: str, expected: str) -> None:
    resolved = license_from_card({"license": "other", "license_name": name,
                                  "license_link": "https://example.test/license"})
    assert resolved.id == "other"
    assert resolved.terms is CATALOGUE[expected]
    assert resolved.known
    assert resolved.name == CATALOGUE[expected].name
    assert resolved.link == "https://example.test/license"


def test_card_with_an_unknown_id_keeps_it() -> None:
    resolved = license_from_card({"license": "Acme-1.0", "license_link": "https://acme.test/l"})
    assert resolved == ResolvedLicense("acme-1.0", None, "acme-1.0", "https://acme.test/l", False, ("acme-1.0",))


def test_card_with_a_list_takes_the_first_and_keeps_all() -> None:
    resolved = license_from_card({"license": ["MIT", "apache-2.0", 3, ""]})
    assert resolved.id == "mit"
    assert resolved.terms is CATALOGUE["mit"]
    assert resolved.ids == ("mit", "apache-2.0")


@pytest.mark.parametrize("card", [None, {}, {"license": None}, {"license": ""}, {"license": []},
                                  {"license": 42}, {"license": "   "}])
def test_card_without_a_license(card: dict[str, object] | None) -> None:
    resolved = license_from_card(card)
    assert resolved.id is None
    assert resolved.terms is None
    assert not resolved.known
    assert resolved.ids == ()


# ---------------------------------------------------------------------------------------------
# Acceptance texts


def test_repo_license_file_is_what_is_accepted() -> None:
    text = "Custom terms.\r\nLine two with ü.\n"
    got = license_text_for_acceptance(CATALOGUE["mit"], text)
    assert got == (text, hashlib.sha256(text.encode("utf-8")).hexdigest(), REPO_VERSION)


def test_blank_repo_license_file_falls_back_to_the_catalogue() -> None:
    assert license_text_for_acceptance(CATALOGUE["mit"], " \n")[2] == CATALOGUE["mit"].version


@pytest.mark.parametrize("license_id", sorted(CATALOGUE))
def test_rendering_is_deterministic_and_hashed_correctly(license_id: str) -> None:
    terms = CATALOGUE[license_id]
    text, sha, version = license_text_for_acceptance(terms, None)
    assert version == terms.version
    assert sha == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert re.fullmatch(r"[0-9a-f]{64}", sha)
    # A fresh, equal entry renders to the very same bytes.
    assert license_text_for_acceptance(dataclasses.replace(terms), None) == (text, sha, version)
    for needle in (terms.name, terms.url, terms.version, terms.summary, *terms.field_of_use_restrictions):
        assert needle in text


def test_rendering_changes_when_any_term_changes() -> None:
    base = CATALOGUE["llama3.1"]
    _, base_sha, _ = license_text_for_acceptance(base, None)
    changes: list[dict[str, Any]] = [
        {"commercial_use": "allowed"}, {"user_threshold": 1_000}, {"train_on_outputs": "forbidden"},
        {"attribution": None}, {"derivative_naming": None}, {"redistribution": "allowed"},
        {"osi_approved": True}, {"summary": base.summary + " More."}, {"url": "https://example.test/"},
        {"field_of_use_restrictions": base.field_of_use_restrictions[:-1]}, {"name": "Llama"},
        {"family": "other"},
    ]
    shas = {license_text_for_acceptance(dataclasses.replace(base, **c), None)[1] for c in changes}
    assert base_sha not in shas
    assert len(shas) == len(changes)
    _, sha, version = license_text_for_acceptance(dataclasses.replace(base, version="2099-01-01"), None)
    assert version == "2099-01-01" and sha != base_sha


def test_resolved_licenses_render_the_card_fields() -> None:
    card = {"license": "other", "license_name": "mrl", "license_link": "https://mistral.ai/licenses/MRL-0.1.md"}
    text, sha, version = license_text_for_acceptance(license_from_card(card), None)
    assert version == "0.1"
    assert "Model card license: other" in text and CATALOGUE["mrl"].summary in text
    assert license_text_for_acceptance(license_from_card(dict(card)), None) == (text, sha, version)


def test_unknown_and_missing_licenses_still_give_a_stable_text() -> None:
    unknown = license_from_card({"license": "acme-1.0", "license_link": "https://acme.test/l"})
    text, sha, version = license_text_for_acceptance(unknown, None)
    assert version == "unknown"
    assert "acme-1.0" in text and "https://acme.test/l" in text
    assert license_text_for_acceptance(unknown, None) == (text, sha, version)
    missing_text, missing_sha, missing_version = license_text_for_acceptance(license_from_card({}), None)
    assert missing_version == "none"
    assert missing_sha != sha and "none declared" in missing_text


# ---------------------------------------------------------------------------------------------
# Display and docs


def test_terms_table() -> None:
    rows = dict(terms_table(CATALOGUE["llama3.1"]))
    assert rows["Identifier"] == "llama3.1"
    assert rows["Commercial use"] == "conditional"
    assert rows["User threshold"] == "700,000,000 monthly active users"
    assert rows["OSI approved"] == "no"
    assert dict(terms_table(CATALOGUE["mit"]))["User threshold"] == "none"
    assert all(isinstance(label, str) and isinstance(value, str) for label, value in terms_table(CATALOGUE["mit"]))


def test_terms_table_of_resolved_licenses() -> None:
    rows = dict(terms_table(license_from_card({"license": "apache-2.0", "license_link": "LICENSE"})))
    assert rows["Text"] == "LICENSE" and rows["Identifier"] == "apache-2.0"
    unknown = dict(terms_table(license_from_card({"license": "acme-1.0"})))
    assert unknown["Identifier"] == "acme-1.0"
    assert "not in releasehub's catalogue" in unknown["Terms"]


def test_every_catalogue_entry_is_in_the_docs() -> None:
    text = (DOCS / "licenses.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in text.splitlines()
            if line.startswith("| `")}
    assert set(rows) == set(CATALOGUE), "docs/licenses.md lists a different set of licenses"
    for license_id, line in rows.items():
        terms = CATALOGUE[license_id]
        cells = [c.strip() for c in line.split("|")[1:-1]]
        threshold = "—" if terms.user_threshold is None else f"{terms.user_threshold:,}"
        assert cells[2:] == [terms.commercial_use, threshold, terms.train_on_outputs,
                             "yes" if terms.osi_approved else "no"], license_id
