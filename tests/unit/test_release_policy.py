"""Gating, stages, tiers, the policy document and eligibility: the pure parts of issue 3."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from releasehub.access import Grant, Permission, RepoPolicy, decide, file_visible
from releasehub.access.eligibility import Applicant, check_eligibility, validate_form
from releasehub.access.policy import (
    Eligibility,
    PolicyError,
    compile_rules,
    glob_match,
    parse_policy,
    policy_from_card,
)
from releasehub.accounts.service import ANONYMOUS, Subject

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
OWNER = Subject(user_id=1, name="lab-owner", scope="write", org_roles={"lab": "admin"})
READER = Subject(user_id=2, name="rita", scope="read", org_roles={"lab": "read"})
ALICE = Subject(user_id=3, name="alice", scope="read")

STAGED = parse_policy({
    "tiers": [
        {"name": "public", "components": ["documentation", "code"]},
        {"name": "researcher", "components": ["weights", "documentation", "code", "evaluations"]},
        {"name": "auditor", "components": ["*"]},
    ],
    "stages": [
        {"name": "small", "files": ["*-8b/*"], "releases": [{"audience": "everyone", "at": "2026-01-01"}]},
        {"name": "large", "files": ["*-70b/*.safetensors"],
         "releases": [{"audience": "researcher", "at": "+30d"}, {"audience": "everyone", "at": "+90d"}]},
    ],
}, NOW)


def repo(gated: str | None = None, doc=STAGED, visibility: str = "public") -> RepoPolicy:  # type: ignore[no-untyped-def]
    return RepoPolicy("lab/m", "lab", visibility, gated, compile_rules(doc))


def test_globs() -> None:
    assert glob_match("*.safetensors", "a/b/model.safetensors")
    assert glob_match("*-70b/*.safetensors", "llama-70b/model-00001.safetensors")
    assert not glob_match("*-70b/*.safetensors", "x/llama-70b/model.safetensors")
    assert glob_match("data/**", "data/a/b.parquet")
    assert not glob_match("data/**", "metadata/a")
    assert glob_match("**/eval.json", "eval.json") and glob_match("**/eval.json", "a/b/eval.json")


def test_relative_times_become_instants() -> None:
    large = STAGED.stages[1]
    assert large.releases[0].at == NOW + timedelta(days=30)
    assert large.releases[1].at == NOW + timedelta(days=90)


@pytest.mark.parametrize("bad,needle", [
    ({"tiers": [{"name": "x", "components": ["weightz"]}]}, "unknown component"),
    ({"stages": [{"name": "s", "files": ["*"], "releases": [{"audience": "vip", "at": "now"}]}]}, "unknown audience"),
    ({"stages": [{"name": "s", "files": ["*"], "releases": [{"audience": "everyone", "at": "soon"}]}]}, "cannot read"),
    ({"eligibility": {"denied_countries": ["Atlantis"]}}, "unknown country"),
    ({"gated": "sometimes"}, "gated"),
    ({"surprise": 1}, "surprise"),
    ({"default_tier": "gold", "tiers": [{"name": "public", "components": ["code"]}]}, "default_tier"),
])
def test_invalid_documents_say_where(bad: dict, needle: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(PolicyError) as info:
        parse_policy(bad, NOW)
    assert needle in str(info.value)


def test_components_default_classification() -> None:
    rules = compile_rules(STAGED)
    assert rules.component_of("model.safetensors") == "weights"
    assert rules.component_of("config.json") == "weights"
    assert rules.component_of("README.md") == "documentation"
    assert rules.component_of("modeling.py") == "code"
    assert rules.component_of("data/train.parquet") == "data"
    assert rules.component_of("evals/mmlu.json") == "evaluations"
    assert rules.component_of("weird.bin2") == "other"


def test_stage_before_and_after_its_time() -> None:
    policy = repo()
    researcher = Grant("accepted", "researcher")
    path = "llama-70b/model.safetensors"
    # Before day 30: not even a researcher sees it; the owner always does.
    assert not file_visible(policy, researcher, NOW + timedelta(days=29), path)
    assert decide(OWNER, policy, Permission.REPO_DOWNLOAD, NOW, path).allowed
    # Day 30: researchers; day 90: everyone whose tier opens weights.
    assert file_visible(policy, researcher, NOW + timedelta(days=30), path)
    assert not file_visible(policy, None, NOW + timedelta(days=30), path)
    assert not file_visible(policy, Grant("accepted", "public"), NOW + timedelta(days=91), path)  # tier: no weights
    assert file_visible(policy, Grant("accepted", "auditor"), NOW + timedelta(days=91), path)


def test_hidden_file_is_entry_not_found_for_every_permission() -> None:
    decision = decide(ALICE, repo(), Permission.REPO_DOWNLOAD, NOW, "llama-70b/model.safetensors")
    assert (decision.allowed, decision.status, decision.error_code) == (False, 404, "EntryNotFound")
    assert decide(ALICE, repo(), Permission.REPO_READ, NOW, "data/x.parquet").error_code == "EntryNotFound"


def test_tiers_open_components() -> None:
    policy = repo()
    assert file_visible(policy, None, NOW, "modeling.py")  # default tier "public" opens code
    assert not file_visible(policy, None, NOW, "llama-8b/model.safetensors")
    assert file_visible(policy, Grant("accepted", "researcher"), NOW, "llama-8b/model.safetensors")
    assert not file_visible(policy, Grant("accepted", "researcher"), NOW, "data/train.parquet")
    assert file_visible(policy, Grant("accepted", "auditor"), NOW, "data/train.parquet")
    # An expired or pending grant is no grant.
    assert not file_visible(policy, Grant("accepted", "auditor", NOW - timedelta(seconds=1)), NOW, "data/train.parquet")
    assert not file_visible(policy, Grant("pending", "auditor"), NOW, "data/train.parquet")
    # The card is always there.
    assert file_visible(policy, None, NOW, "README.md")


def test_gate_contract() -> None:
    plain = parse_policy({}, NOW)
    policy = repo("manual", plain)
    anon = decide(ANONYMOUS, policy, Permission.REPO_DOWNLOAD, NOW, "model.safetensors")
    assert (anon.status, anon.error_code) == (401, "GatedRepo")
    signed = decide(ALICE, policy, Permission.REPO_DOWNLOAD, NOW, "model.safetensors")
    assert (signed.status, signed.error_code) == (403, "GatedRepo")
    assert "releasehub access request lab/m" in signed.reason
    # Metadata stays readable; the card stays downloadable.
    assert decide(ALICE, policy, Permission.REPO_READ, NOW, "model.safetensors").allowed
    assert decide(ANONYMOUS, policy, Permission.REPO_DOWNLOAD, NOW, "README.md").allowed
    assert decide(ALICE, policy, Permission.REPO_DOWNLOAD, NOW, "x", Grant("accepted")).allowed
    rejected = decide(ALICE, policy, Permission.REPO_DOWNLOAD, NOW, "x", Grant("rejected", reason="no affiliation"))
    assert "no affiliation" in rejected.reason and rejected.status == 403
    expired = decide(ALICE, policy, Permission.REPO_DOWNLOAD, NOW, "x", Grant("accepted", None, NOW))
    assert not expired.allowed and "expired" in expired.reason
    # Members of the owning organisation are never gated.
    assert decide(READER, policy, Permission.REPO_DOWNLOAD, NOW, "x").allowed


def test_visibility_gradient() -> None:
    plain = parse_policy({}, NOW)
    writer = Subject(user_id=9, name="w", scope="write", org_roles={"lab": "write"})
    everyone = {"owner": OWNER, "writer": writer, "reader": READER, "alice": ALICE, "anonymous": ANONYMOUS}
    for visibility, who_sees in (("private", {"owner", "writer"}), ("internal", {"owner", "writer", "reader"}),
                                 ("public", set(everyone))):
        policy = repo(None, plain, visibility)
        for label, subject in everyone.items():
            assert decide(subject, policy, Permission.REPO_READ, NOW).allowed is (label in who_sees), (visibility, label)


def test_review_needs_write_role() -> None:
    policy = repo("manual", parse_policy({}, NOW))
    assert decide(OWNER, policy, Permission.REPO_REVIEW, NOW).allowed
    assert not decide(READER, policy, Permission.REPO_REVIEW, NOW).allowed
    assert decide(ANONYMOUS, policy, Permission.ACCESS_REQUEST, NOW).status == 401
    assert decide(ALICE, policy, Permission.ACCESS_REQUEST, NOW).allowed


def test_card_fields_become_policy() -> None:
    card = {
        "license": "llama3.1",
        "extra_gated_heading": "Request access",
        "extra_gated_prompt": "By requesting you agree to the terms.",
        "extra_gated_fields": {
            "Name": "text", "Country": "country", "Date of birth": "date_picker",
            "I want to use this model for": {"type": "select", "options": ["Research", {"label": "Other", "value": "other"}]},
            "I accept the license": "checkbox",
        },
        "extra_gated_eu_disallowed": True,
        "releasehub": {"grant_days": 30, "eligibility": {"min_age": 18}},
    }
    doc = parse_policy(policy_from_card(card, NOW), NOW)
    assert doc.gate.heading == "Request access"
    assert [f.type for f in doc.gate.fields] == ["text", "country", "date_picker", "select", "checkbox"]
    assert doc.gate.fields[3].options == ("Research", "other")
    assert doc.eligibility.eu_disallowed and doc.eligibility.min_age == 18
    assert doc.grant_days == 30


def test_form_validation_names_each_problem() -> None:
    doc = parse_policy({"gate": {"fields": {"Name": "text", "Country": "country", "Use": {
        "type": "select", "options": ["Research"]}, "I agree": "checkbox", "Born": "date_picker"}}}, NOW)
    problems = validate_form(doc.gate, {"Country": "Narnia", "Use": "Fun", "I agree": False, "Born": "yesterday"})
    text = " | ".join(problems)
    for needle in ("'Name' is required", "unknown country 'Narnia'", "one of: Research", "must be ticked", "a date"):
        assert needle in text
    assert validate_form(doc.gate, {"Name": "A", "Country": "DE", "Use": "Research", "I agree": True,
                                    "Born": "1990-01-02"}) == []


TODAY = date(2026, 6, 1)


@pytest.mark.parametrize("rules,applicant,failed", [
    (Eligibility(eu_disallowed=True), Applicant({"Country": "France"}), "eu_disallowed"),
    (Eligibility(eu_disallowed=True), Applicant({"Country": "Norway"}), None),
    (Eligibility(eu_disallowed=True), Applicant({"Country": "Norway"}, geo_country="DE"), "eu_disallowed"),
    (Eligibility(allowed_countries=("US", "CA")), Applicant({"Country": "Canada"}), None),
    (Eligibility(allowed_countries=("US",)), Applicant({"Country": "Mexico"}), "allowed_countries"),
    (Eligibility(denied_countries=("KP",)), Applicant({"Country": "KP"}), "denied_countries"),
    (Eligibility(denied_countries=("KP",)), Applicant({}), "country"),
    (Eligibility(min_age=18), Applicant({"Age": "17"}), "min_age"),
    (Eligibility(min_age=18), Applicant({"Date of birth": "2008-06-01"}), None),
    (Eligibility(min_age=18), Applicant({"Date of birth": "2008-06-02"}), "min_age"),
    (Eligibility(purposes=("research",)), Applicant({"Purpose": "Research"}), None),
    (Eligibility(purposes=("research",)), Applicant({"Purpose": "commercial"}), "purposes"),
    (Eligibility(email_domains=("uni.edu",)), Applicant({}, "a@cs.uni.edu", True), None),
    (Eligibility(email_domains=("uni.edu",)), Applicant({}, "a@uni.edu", False), "email_domains"),
    (Eligibility(email_domains=("uni.edu",)), Applicant({}, "a@evil-uni.edu", True), "email_domains"),
])
def test_eligibility_rules(rules: Eligibility, applicant: Applicant, failed: str | None) -> None:
    refusal = check_eligibility(rules, applicant, TODAY)
    assert (refusal.rule if refusal else None) == failed
    if refusal:
        assert refusal.message


# Property: whatever the policy, grant and time, an outsider is allowed to download a file
# only if the file is visible to them, and a hidden file is always EntryNotFound (never a
# gate or repo error that would confirm it exists).
paths = st.sampled_from(["README.md", "model.safetensors", "llama-70b/model.safetensors", "llama-8b/x.safetensors",
                         "modeling.py", "data/train.parquet", "evals/mmlu.json", "notes.txt"])
grants = st.one_of(st.none(), st.builds(
    Grant, st.sampled_from(["pending", "accepted", "rejected"]),
    st.sampled_from([None, "public", "researcher", "auditor"]),
    st.one_of(st.none(), st.sampled_from([NOW - timedelta(days=1), NOW + timedelta(days=400)])),
))


@settings(max_examples=400, deadline=None)
@given(path=paths, grant=grants, gated=st.sampled_from([None, "auto", "manual"]),
       days=st.integers(min_value=-10, max_value=120), subject=st.sampled_from([ANONYMOUS, ALICE]))
def test_no_decision_reveals_a_hidden_file(path: str, grant: Grant | None, gated: str | None, days: int,
                                           subject: Subject) -> None:
    now = NOW + timedelta(days=days)
    policy = repo(gated)
    visible = file_visible(policy, grant, now, path)
    for permission in (Permission.REPO_READ, Permission.REPO_DOWNLOAD):
        decision = decide(subject, policy, permission, now, path, grant)
        if not visible:
            assert decision.error_code == "EntryNotFound" and decision.status == 404
        if decision.allowed:
            assert visible
            if permission is Permission.REPO_DOWNLOAD and gated and path != "README.md":
                assert grant is not None and grant.active(now)


def test_policy_refuses_rules_the_form_cannot_satisfy() -> None:
    from datetime import datetime, timezone

    from releasehub.access.policy import PolicyError, parse_policy

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    with pytest.raises(PolicyError, match="min_age.*Date of birth"):
        parse_policy({"gate": {"fields": {"Name": "text"}}, "eligibility": {"min_age": 18}}, now)
    with pytest.raises(PolicyError, match="purposes"):
        parse_policy({"eligibility": {"purposes": ["Research"]}}, now)
    ok = parse_policy({"gate": {"fields": {"Date of birth": "date_picker", "Purpose": {
        "type": "select", "options": ["Research"]}}}, "eligibility": {"min_age": 18, "purposes": ["Research"]}}, now)
    assert ok.eligibility.min_age == 18
    assert parse_policy({"gate": {"fields": {"Age": "text"}}, "eligibility": {"min_age": 13}}, now).eligibility.min_age
