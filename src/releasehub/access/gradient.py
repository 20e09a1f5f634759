"""Where a release sits on the gradient of release, in words a person reads at a glance.

Plain data in, plain data out (no I/O): the pages, the list and the API shape it the same way.
A release can sit in several places at once (a gated release in stages, with an API); the first
place is the one that most limits who gets the weights.
"""

from __future__ import annotations

from dataclasses import dataclass

from releasehub.access.decide import RepoPolicy


@dataclass(frozen=True)
class Place:
    key: str  # a stable name: private, internal, hosted-only, staged, tiered, gated, open, api
    label: str
    meaning: str


def places(policy: RepoPolicy, *, hosted: bool = False) -> list[Place]:
    rules = policy.rules
    found: list[Place] = []
    if policy.visibility == "private":
        found.append(Place("private", "private", "Only the releasing team sees this model."))
    elif policy.visibility == "internal":
        found.append(Place("internal", "internal", f"Members of {policy.namespace} see this model."))
    if rules.hosted_only:
        found.append(Place("hosted-only", "hosted-only",
                           "The weights never leave the server: the model is used through its API."))
    if rules.stages:
        found.append(Place("staged", "staged", "Files are released in stages, on a schedule."))
    if rules.has_tiers:
        found.append(Place("tiered", "tiered", "Access tiers open different components to different people."))
    if policy.gated == "manual":
        found.append(Place("gated", "gated (reviewed)",
                           "Downloads need an access request that the releasers review."))
    elif policy.gated == "auto":
        found.append(Place("gated", "gated (click-through)",
                           "Downloads need accepting the terms; access is granted at once."))
    if not found:
        found.append(Place("open", "open", "Anyone may download every file."))
    if hosted:
        found.append(Place("api", "API", "Served through an OpenAI-compatible API with a key."))
    return found
