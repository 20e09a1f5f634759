"""Eligibility rules and the gate form: checked before any grant, pure functions.

A refusal names the rule that failed and what the requester declared, so that they can
tell a typo from a real refusal; a rejected requester may correct it and ask again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Mapping

import pycountry

from releasehub.access.policy import Eligibility, FormField, Gate

# The 27 member states of the European Union (ISO 3166-1 alpha-2).
EU_COUNTRIES = frozenset({
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT", "LV",
    "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
})

# Form labels that carry the facts the rules read (matched case-insensitively, by prefix).
_COUNTRY_LABELS = ("country",)
_AGE_LABELS = ("age",)
_BIRTH_LABELS = ("date of birth", "birth date", "birthday", "date_of_birth")
_PURPOSE_LABELS = ("purpose", "intended use", "i want to use this model for")


def unsatisfiable(rules: Eligibility, gate: Gate) -> list[str]:
    """Rules that no request could pass because the form never asks for what they read."""
    labels = [f.label.strip().lower() for f in gate.fields]

    def asks(candidates: tuple[str, ...]) -> bool:
        return any(label == c or label.startswith(c) for label in labels for c in candidates)

    problems = []
    if rules.min_age is not None and not asks(_AGE_LABELS + _BIRTH_LABELS):
        problems.append("eligibility.min_age: the request form has no `Age` or `Date of birth` field to read the "
                        "age from; add one to gate.fields (e.g. `Date of birth: date_picker`) or drop min_age")
    if rules.purposes and not asks(_PURPOSE_LABELS):
        problems.append("eligibility.purposes: the request form has no purpose field (a label starting with "
                        "`Purpose` or `Intended use`) to read the purpose from; add one to gate.fields (e.g. "
                        "`{Purpose: {type: select, options: [...]}}`) or drop purposes")
    return problems


def country_code(value: str | None) -> str | None:
    """ISO alpha-2 code for a code, alpha-3 code or English name; None when unknown."""
    if not value or not isinstance(value, str):
        return None
    try:
        return str(pycountry.countries.lookup(value.strip()).alpha_2)
    except LookupError:
        return None


@dataclass(frozen=True)
class Refusal:
    rule: str
    message: str


@dataclass(frozen=True)
class Applicant:
    """What the rules may read about a requester."""

    fields: Mapping[str, Any]
    email: str | None = None
    email_verified: bool = False
    geo_country: str | None = None  # from the operator's GeoIP database, when configured


def validate_form(gate: Gate, fields: Mapping[str, Any]) -> list[str]:
    """Problems with the submitted form: missing required fields, wrong types, unknown options."""
    problems: list[str] = []
    for spec in gate.fields:
        value = fields.get(spec.label)
        if value is None or value == "":
            if spec.required:
                problems.append(f"field {spec.label!r} is required ({_describe(spec)})")
            continue
        problem = _check_value(spec, value)
        if problem:
            problems.append(problem)
    return problems


def _describe(spec: FormField) -> str:
    if spec.type == "select":
        return "one of: " + ", ".join(spec.options)
    return {"checkbox": "tick it: true", "date_picker": "a date, YYYY-MM-DD", "country": "a country name or ISO code",
            "text": "text"}[spec.type]


def _check_value(spec: FormField, value: Any) -> str | None:
    if spec.type == "checkbox":
        if value is not True and str(value).lower() not in ("true", "yes", "on", "1"):
            return f"field {spec.label!r} must be ticked (true) to request access"
    elif spec.type == "date_picker":
        if _as_date(value) is None:
            return f"field {spec.label!r} must be a date (YYYY-MM-DD), not {value!r}"
    elif spec.type == "country":
        if country_code(str(value)) is None:
            return f"field {spec.label!r}: unknown country {value!r}; give a name or an ISO code such as DE"
    elif spec.type == "select":
        if str(value) not in spec.options:
            return f"field {spec.label!r} must be one of: {', '.join(spec.options)} (got {value!r})"
    elif not isinstance(value, (str, int, float)) or len(str(value)) > 5000:
        return f"field {spec.label!r} must be text of at most 5000 characters"
    return None


def _as_date(value: Any) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return datetime.fromisoformat(str(value).strip()[:10]).date()
    except ValueError:
        return None


def _find(fields: Mapping[str, Any], labels: tuple[str, ...]) -> Any:
    for key, value in fields.items():
        lowered = str(key).strip().lower()
        if any(lowered == label or lowered.startswith(label) for label in labels):
            return value
    return None


def declared_country(applicant: Applicant) -> str | None:
    return country_code(_find(applicant.fields, _COUNTRY_LABELS))


def check_eligibility(rules: Eligibility, applicant: Applicant, today: date) -> Refusal | None:
    """The first rule the applicant fails, or None when every rule passes."""
    declared = declared_country(applicant)
    countries = [c for c in (declared, applicant.geo_country) if c]
    if rules.allowed_countries or rules.denied_countries or rules.eu_disallowed:
        if not countries:
            return Refusal("country", "This release is only available in some countries: declare your "
                                      "country in a `Country` field.")
        for code in countries:
            source = "declared" if code == declared else "located (GeoIP)"
            if rules.allowed_countries and code not in rules.allowed_countries:
                return Refusal("allowed_countries", f"Country {code} ({source}) is not among the countries "
                                                    f"this release is available in: {', '.join(rules.allowed_countries)}.")
            if code in rules.denied_countries:
                return Refusal("denied_countries", f"This release is not available in {code} ({source}).")
            if rules.eu_disallowed and code in EU_COUNTRIES:
                return Refusal("eu_disallowed", f"This release is not available in the European Union "
                                                f"({code}, {source}).")
    if rules.min_age is not None:
        age = _age(applicant.fields, today)
        if age is None:
            return Refusal("min_age", f"This release requires an age of at least {rules.min_age}: declare it in an "
                                      "`Age` field (a number) or a `Date of birth` field (YYYY-MM-DD).")
        if age < rules.min_age:
            return Refusal("min_age", f"This release requires an age of at least {rules.min_age}.")
    if rules.purposes:
        purpose = _find(applicant.fields, _PURPOSE_LABELS)
        allowed = {p.lower() for p in rules.purposes}
        if purpose is None or str(purpose).strip().lower() not in allowed:
            return Refusal("purposes", f"This release is available for these purposes only: "
                                       f"{', '.join(rules.purposes)}; declared: {purpose!r}.")
    if rules.email_domains:
        email = (applicant.email or "").lower()
        domain = email.rpartition("@")[2]
        if not applicant.email_verified or not domain:
            return Refusal("email_domains", "This release requires a verified email address at "
                                            f"{', '.join(rules.email_domains)}; your account has none. "
                                            "Ask the server operator to verify your email.")
        if not any(domain == d or domain.endswith("." + d) for d in rules.email_domains):
            return Refusal("email_domains", f"Your verified email domain {domain} is not one of "
                                            f"{', '.join(rules.email_domains)}.")
    return None


def _age(fields: Mapping[str, Any], today: date) -> int | None:
    raw = _find(fields, _AGE_LABELS)
    if raw is not None:
        try:
            return int(str(raw).strip())
        except ValueError:
            return None
    born = _as_date(_find(fields, _BIRTH_LABELS))
    if born is None:
        return None
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
