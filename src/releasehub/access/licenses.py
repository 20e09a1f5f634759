"""The license catalogue: what each license a model card may name lets a downloader do.

A gated release asks the requester to accept a license, so releasehub must be able to say what
that license is. Model cards name it the Hub's way (`license:` in the YAML header, plus
`license_name` and `license_link` when it is `other`); this module turns that into structured
terms a CLI or a web page can show, and into the exact text whose sha256 is recorded with each
access request.

The entries are summaries written for this project, not license texts: each points to the
canonical text, which governs. Where a term depends on facts the catalogue cannot know (how a
court reads "adaptation", what an unlisted license says), it is marked "conditional" rather
than guessed.

Pure data and pure functions: no I/O, no web or database imports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

ALLOWED = "allowed"
CONDITIONAL = "conditional"
FORBIDDEN = "forbidden"
PERMISSIONS = (ALLOWED, CONDITIONAL, FORBIDDEN)

FAMILIES = ("permissive", "copyleft", "responsible-ai", "community", "non-commercial", "research-only", "other")

# Bump when the rendering below changes: every stored sha256 of a rendered text then stops
# matching, and requesters are asked to accept again (LicenseChanged) instead of being held to
# a text they never saw.
ACCEPTANCE_FORMAT = "releasehub-license-summary/1"
REPO_VERSION = "repo"  # the version recorded when the repo's own LICENSE file is what was accepted


@dataclass(frozen=True)
class LicenseTerms:
    """One license, as a downloader needs to know it before accepting.

    `commercial_use`, `train_on_outputs` and `redistribution` are "allowed" (nothing beyond
    notices and attribution), "conditional" (allowed under further conditions: a user
    threshold, share-alike, passing use restrictions on, a purpose limit) or "forbidden".
    Use-based restrictions that apply to every use, commercial or not, are listed in
    `field_of_use_restrictions` rather than folded into `commercial_use`.
    `user_threshold` is the number of monthly active users above which a separate license
    from the licensor is needed. `attribution` and `derivative_naming` are None when the
    license requires none.
    """

    id: str
    name: str
    version: str
    url: str
    family: str
    commercial_use: str
    train_on_outputs: str
    redistribution: str
    osi_approved: bool
    summary: str
    user_threshold: int | None = None
    field_of_use_restrictions: tuple[str, ...] = field(default=())
    attribution: str | None = None
    derivative_naming: str | None = None

    def __post_init__(self) -> None:
        # A malformed entry fails at import, not in front of a requester.
        object.__setattr__(self, "field_of_use_restrictions", tuple(self.field_of_use_restrictions))
        problems = []
        if not self.id or self.id != self.id.strip().lower():
            problems.append(f"id {self.id!r} must be lower-case without surrounding spaces")
        if self.family not in FAMILIES:
            problems.append(f"family {self.family!r} is not one of {FAMILIES}")
        for name in ("commercial_use", "train_on_outputs", "redistribution"):
            if getattr(self, name) not in PERMISSIONS:
                problems.append(f"{name} {getattr(self, name)!r} is not one of {PERMISSIONS}")
        if not self.url.startswith("https://"):
            problems.append(f"url {self.url!r} must be https")
        if self.user_threshold is not None and self.user_threshold <= 0:
            problems.append("user_threshold must be positive or None")
        if not self.version or not self.summary.strip():
            problems.append("version and summary are required")
        if problems:
            raise ValueError(f"License entry {self.id!r}: " + "; ".join(problems))


@dataclass(frozen=True)
class ResolvedLicense:
    """What a model card's license fields come to.

    `id` is the card's `license` (the first one when it lists several; every id is kept in
    `ids`), lower-cased, or None when the card names none. `known` says whether the catalogue
    describes it, and then `terms` is that entry. For `license: other`, `license_name` is looked
    up in the catalogue too (Mistral cards say `other` + `mrl`). `name` and `link` are what a
    page shows: the card's `license_link` wins over the catalogue's address because it points
    at this release's copy.
    """

    id: str | None
    terms: LicenseTerms | None
    name: str | None
    link: str | None
    known: bool
    ids: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Shared wording

_RAIL_RESTRICTIONS = (
    "No use that violates applicable law.",
    "No use to exploit or harm minors.",
    ("No generating or spreading verifiably false information meant to harm others, or personal "
     "information that can be used to harm someone."),
    "No use to defame or harass others.",
    ("No fully automated decision-making that adversely affects a person's legal rights or creates "
     "binding obligations."),
    ("No use that discriminates against or harms people based on social behaviour or personal "
     "characteristics, or that exploits the vulnerabilities of a specific group."),
    "No medical advice or interpretation of medical results.",
    ("No use for the administration of justice, law enforcement, immigration or asylum, such as "
     "predictive policing."),
)
_RAIL_ATTRIBUTION = ("Give recipients a copy of the license, keep the copyright and attribution notices, "
                     "and mark modified files.")
_RAIL_OUTPUTS = ("The licensor claims no rights in outputs, but a model trained on the model's outputs to "
                 "perform like it (distillation, synthetic data) counts as a derivative, bound by the same "
                 "use restrictions.")
_RAIL_REDISTRIBUTION = ("The model and its derivatives may be shared, under any terms, as long as those terms "
                        "include the use-based restrictions as enforceable provisions.")

_LLAMA_AUP = (
    ("Use must comply with applicable law, trade-compliance law included, and with Meta's Acceptable Use "
     "Policy for this version, which is part of the license."),
    ("No illegal activity or content, including violence, terrorism, exploitation of children, human "
     "trafficking, harassment, or unlawful discrimination in employment, credit, housing or essential services."),
    "No unlicensed practice of a profession such as law, medicine or finance.",
    ("No activities that risk death or bodily harm, including military, warfare, nuclear or espionage uses, "
     "weapons, illegal drugs, and operating critical infrastructure or heavy machinery."),
    ("No use to deceive or mislead, including fraud, disinformation, defamation, spam, impersonation, or "
     "presenting outputs as human-generated."),
    "Known dangers of the AI system must be disclosed to its end users.",
)
_LLAMA_EU_MULTIMODAL = (
    ("The acceptable use policy withholds the license for any multimodal models of this version from "
     "individuals domiciled, and companies with their principal place of business, in the European Union "
     "(end users of a product that incorporates them are not affected)."),
)
_LLAMA_THRESHOLD = 700_000_000
_LLAMA_THRESHOLD_SENTENCE = (
    "Licensees whose products had more than 700 million monthly active users in the month before the "
    "version's release date must ask Meta for a separate license, which Meta may refuse."
)


def _llama31_plus(version_name: str, release: str, slug: str, extra: str,
                  restrictions: tuple[str, ...] = ()) -> LicenseTerms:
    """Llama 3.1 and later share one license shape; only the version, date and policy differ."""
    return LicenseTerms(
        id=f"llama{version_name}",
        name=f"Llama {version_name} Community License Agreement",
        version=release,
        url=f"https://www.llama.com/{slug}/license/",
        family="community",
        commercial_use=CONDITIONAL,
        user_threshold=_LLAMA_THRESHOLD,
        field_of_use_restrictions=_LLAMA_AUP + restrictions,
        train_on_outputs=CONDITIONAL,
        attribution=(f'Display "Built with Llama" prominently, give recipients a copy of the agreement, and '
                     f'keep Meta\'s "Llama {version_name} is licensed under..." notice in a "Notice" text file.'),
        derivative_naming='Distributed AI models created, trained, fine-tuned or improved with the Llama '
                          'Materials or their outputs must have names that begin with "Llama".',
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary=(f"Meta's custom license for Llama {version_name}: use, modification and redistribution are "
                 f"royalty-free, subject to the acceptable use policy. {_LLAMA_THRESHOLD_SENTENCE} Outputs may "
                 "be used to train other models, but a distributed model built that way must have a name that "
                 f"begins with \"Llama\". {extra}").strip(),
    )


# ---------------------------------------------------------------------------------------------
# The catalogue, in the order docs/licenses.md lists it

_ENTRIES = (
    LicenseTerms(
        id="apache-2.0",
        name="Apache License 2.0",
        version="2.0",
        url="https://www.apache.org/licenses/LICENSE-2.0",
        family="permissive",
        commercial_use=ALLOWED,
        train_on_outputs=ALLOWED,
        attribution="Include the license, keep copyright, patent, trademark and attribution notices and any "
                    "NOTICE file, and state significant changes in modified files.",
        redistribution=ALLOWED,
        osi_approved=True,
        summary="A permissive license: use, modify and redistribute for any purpose, commercial included. "
                "It grants a patent license that ends for anyone who sues claiming the work infringes a "
                "patent. It grants no trademark rights and comes without warranty.",
    ),
    LicenseTerms(
        id="mit",
        name="MIT License",
        version="unversioned",
        url="https://opensource.org/license/mit",
        family="permissive",
        commercial_use=ALLOWED,
        train_on_outputs=ALLOWED,
        attribution="Include the copyright notice and the permission notice in all copies or substantial "
                    "portions.",
        redistribution=ALLOWED,
        osi_approved=True,
        summary="A short permissive license: do anything with the work, commercial use included, as long as "
                "the copyright and permission notices travel with it. No warranty; no explicit patent grant.",
    ),
    LicenseTerms(
        id="bsd-3-clause",
        name='BSD 3-Clause "New" or "Revised" License',
        version="unversioned",
        url="https://opensource.org/license/bsd-3-clause",
        family="permissive",
        commercial_use=ALLOWED,
        train_on_outputs=ALLOWED,
        attribution="Keep the copyright notice, the conditions and the disclaimer in source and binary "
                    "distributions; contributors' names may not endorse derived products without permission.",
        redistribution=ALLOWED,
        osi_approved=True,
        summary="A permissive license: use, modify and redistribute for any purpose, commercial included, "
                "keeping the notices. It forbids using the authors' names to promote derived products. No "
                "warranty; no explicit patent grant.",
    ),
    LicenseTerms(
        id="cc0-1.0",
        name="Creative Commons Zero v1.0 Universal",
        version="1.0",
        url="https://creativecommons.org/publicdomain/zero/1.0/legalcode",
        family="permissive",
        commercial_use=ALLOWED,
        train_on_outputs=ALLOWED,
        redistribution=ALLOWED,
        osi_approved=False,
        summary="A public-domain dedication: the author waives copyright and related rights as far as the law "
                "allows, with a fallback permissive license where it does not. No attribution is required. "
                "Patent and trademark rights are expressly not waived.",
    ),
    LicenseTerms(
        id="cc-by-4.0",
        name="Creative Commons Attribution 4.0 International",
        version="4.0",
        url="https://creativecommons.org/licenses/by/4.0/legalcode",
        family="permissive",
        commercial_use=ALLOWED,
        train_on_outputs=ALLOWED,
        attribution="Credit the creator, link to the license, and indicate whether changes were made.",
        redistribution=ALLOWED,
        osi_approved=False,
        summary="Share and adapt for any purpose, commercial included, with attribution. Recipients may not "
                "be given additional restrictions (legal or technical) that stop them doing what the license "
                "allows. It licenses no patent or trademark rights and was not written for software.",
    ),
    LicenseTerms(
        id="cc-by-sa-4.0",
        name="Creative Commons Attribution-ShareAlike 4.0 International",
        version="4.0",
        url="https://creativecommons.org/licenses/by-sa/4.0/legalcode",
        family="copyleft",
        commercial_use=ALLOWED,
        train_on_outputs=CONDITIONAL,
        attribution="Credit the creator, link to the license, and indicate whether changes were made.",
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="Share and adapt for any purpose, commercial included, with attribution; adaptations must be "
                "shared under the same or a compatible license. The license does not address model "
                "outputs; whether a model trained on them is an adaptation is unsettled.",
    ),
    LicenseTerms(
        id="cc-by-nc-4.0",
        name="Creative Commons Attribution-NonCommercial 4.0 International",
        version="4.0",
        url="https://creativecommons.org/licenses/by-nc/4.0/legalcode",
        family="non-commercial",
        commercial_use=FORBIDDEN,
        field_of_use_restrictions=(("Only for purposes not primarily intended for commercial advantage or "
                                    "monetary compensation."),),
        train_on_outputs=CONDITIONAL,
        attribution="Credit the creator, link to the license, and indicate whether changes were made.",
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="Share and adapt with attribution, for non-commercial purposes only; commercial use needs "
                "separate permission from the rights holder. The license does not address model outputs; "
                "whether training on them carries the non-commercial condition over is unsettled.",
    ),
    LicenseTerms(
        id="cc-by-nc-sa-4.0",
        name="Creative Commons Attribution-NonCommercial-ShareAlike 4.0 International",
        version="4.0",
        url="https://creativecommons.org/licenses/by-nc-sa/4.0/legalcode",
        family="non-commercial",
        commercial_use=FORBIDDEN,
        field_of_use_restrictions=(("Only for purposes not primarily intended for commercial advantage or "
                                    "monetary compensation."),),
        train_on_outputs=CONDITIONAL,
        attribution="Credit the creator, link to the license, and indicate whether changes were made.",
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="Share and adapt with attribution, for non-commercial purposes only, and share adaptations "
                "under the same or a compatible license. Commercial use needs separate permission from the "
                "rights holder. The license does not address model outputs.",
    ),
    LicenseTerms(
        id="gpl-3.0",
        name="GNU General Public License v3.0",
        version="3.0",
        url="https://www.gnu.org/licenses/gpl-3.0.html",
        family="copyleft",
        commercial_use=ALLOWED,
        train_on_outputs=CONDITIONAL,
        attribution="Keep copyright and license notices, and mark modified versions as changed, with a date.",
        redistribution=CONDITIONAL,
        osi_approved=True,
        summary="A strong copyleft license: use for any purpose, commercial included; whoever distributes the "
                "work or a work based on it must license the whole under GPL-3.0 and provide the "
                "corresponding source. Output is covered only when it itself contains the covered work; how "
                "that applies to models trained on outputs is unsettled.",
    ),
    LicenseTerms(
        id="llama2",
        name="Llama 2 Community License Agreement",
        version="2023-07-18",
        url="https://ai.meta.com/llama/license/",
        family="community",
        commercial_use=CONDITIONAL,
        user_threshold=_LLAMA_THRESHOLD,
        field_of_use_restrictions=_LLAMA_AUP,
        train_on_outputs=FORBIDDEN,
        attribution='Give recipients a copy of the agreement and keep Meta\'s "Llama 2 is licensed under..." '
                    'notice in a "Notice" text file.',
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="Meta's custom license for Llama 2: use, modification and redistribution are royalty-free, "
                f"subject to the acceptable use policy. {_LLAMA_THRESHOLD_SENTENCE} The Llama Materials and "
                "their outputs may not be used to improve any other large language model than Llama 2 and "
                "its derivatives.",
    ),
    LicenseTerms(
        id="llama3",
        name="Meta Llama 3 Community License Agreement",
        version="2024-04-18",
        url="https://www.llama.com/llama3/license/",
        family="community",
        commercial_use=CONDITIONAL,
        user_threshold=_LLAMA_THRESHOLD,
        field_of_use_restrictions=_LLAMA_AUP,
        train_on_outputs=FORBIDDEN,
        attribution='Display "Built with Meta Llama 3" prominently, give recipients a copy of the agreement, '
                    'and keep Meta\'s "Meta Llama 3 is licensed under..." notice in a "Notice" text file.',
        derivative_naming='Distributed AI models created, trained, fine-tuned or improved with the Llama '
                          'Materials must have names that begin with "Llama 3".',
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="Meta's custom license for Llama 3: use, modification and redistribution are royalty-free, "
                f"subject to the acceptable use policy. {_LLAMA_THRESHOLD_SENTENCE} The Llama Materials and "
                "their outputs may not be used to improve any other large language model than Llama 3 and "
                "its derivatives; distributed derivatives are named \"Llama 3...\".",
    ),
    _llama31_plus("3.1", "2024-07-23", "llama3_1", ""),
    _llama31_plus("3.2", "2024-09-25", "llama3_2",
                  "The acceptable use policy excludes EU-based licensees from the multimodal (vision) models.",
                  _LLAMA_EU_MULTIMODAL),
    _llama31_plus("3.3", "2024-12-06", "llama3_3",
                  "Llama 3.3 models are text-only, though its policy repeats the EU clause on multimodal models.",
                  _LLAMA_EU_MULTIMODAL),
    _llama31_plus("4", "2025-04-05", "llama4",
                  "Llama 4 models are multimodal, and the acceptable use policy excludes EU-based licensees "
                  "from them.",
                  _LLAMA_EU_MULTIMODAL),
    LicenseTerms(
        id="gemma",
        name="Gemma Terms of Use",
        version="2024-04-01",
        url="https://ai.google.dev/gemma/terms",
        family="community",
        commercial_use=ALLOWED,
        field_of_use_restrictions=(
            ("Use must follow the Gemma Prohibited Use Policy, which is part of the terms and which Google "
             "may update, and applicable law."),
            "No generating content that infringes others' rights.",
            ("No dangerous, illegal or malicious activities, such as child sexual abuse material, violent "
             "extremism, malware, fraud, phishing or spam."),
            "No unlicensed practice of a profession such as law, medicine, accounting or finance.",
            "No attempts to override or circumvent safety filters.",
            "No content that promotes hatred, harassment or violence.",
            ("No misinformation, misrepresentation or impersonation, including passing generated content "
             "off as human-made to deceive."),
            ("No sexually explicit content, except for scientific, educational, documentary or artistic "
             "purposes."),
        ),
        train_on_outputs=CONDITIONAL,
        attribution='Give recipients a copy of the terms, mark modified files, and ship a "Notice" file '
                    "stating that Gemma is provided under and subject to the Gemma Terms of Use.",
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="Google's custom terms for Gemma models: use, modification and redistribution are allowed, "
                "commercial use included, with no user threshold, subject to the prohibited use policy. "
                "Whoever distributes Gemma or a Model Derivative must pass the use restrictions on as "
                "enforceable terms. Google claims no rights in outputs, but a model trained on Gemma outputs "
                "or by distillation to perform like Gemma is a Model Derivative under these terms. Google "
                "may restrict uses it believes violate them. Gemma 4 models are released under Apache 2.0 "
                "instead.",
    ),
    LicenseTerms(
        id="openrail",
        name="OpenRAIL license family",
        version="unversioned",
        url="https://huggingface.co/blog/open_rail",
        family="responsible-ai",
        commercial_use=CONDITIONAL,
        field_of_use_restrictions=(("The use-based restrictions listed in the specific license text apply, "
                                    "and must be passed on to derivatives."),),
        train_on_outputs=CONDITIONAL,
        attribution=_RAIL_ATTRIBUTION,
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="The Hub's label for the Open Responsible AI License family, not one text: open access, "
                "reuse and redistribution, with use-based restrictions that follow the artifact and its "
                "derivatives. Members generally allow commercial use; the exact terms are those of the "
                "license text shipped with the model.",
    ),
    LicenseTerms(
        id="openrail-m",
        name="Open RAIL-M License (generic)",
        version="unversioned",
        url="https://huggingface.co/blog/open_rail",
        family="responsible-ai",
        commercial_use=CONDITIONAL,
        field_of_use_restrictions=(("The use-based restrictions listed in the specific license text apply, "
                                    "and must be passed on to derivatives."),),
        train_on_outputs=CONDITIONAL,
        attribution=_RAIL_ATTRIBUTION,
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="An Open RAIL license for a model (the \"M\"), without saying which text: the BigScience, "
                "CreativeML and BigCode variants differ in their restrictions and update clauses. They allow "
                "use, modification and redistribution, commercial included, under use-based restrictions "
                "that bind derivatives; the text shipped with the model governs.",
    ),
    LicenseTerms(
        id="creativeml-openrail-m",
        name="CreativeML Open RAIL-M License",
        version="2022-08-22",
        url="https://huggingface.co/spaces/CompVis/stable-diffusion-license",
        family="responsible-ai",
        commercial_use=ALLOWED,
        field_of_use_restrictions=_RAIL_RESTRICTIONS,
        train_on_outputs=CONDITIONAL,
        attribution=_RAIL_ATTRIBUTION,
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="The license of Stable Diffusion v1: use, modify and redistribute, commercial use included, "
                f"under use-based restrictions. {_RAIL_REDISTRIBUTION} {_RAIL_OUTPUTS} The licensor reserves "
                "the right to restrict violating uses remotely, to update the model, and to modify outputs "
                "through updates.",
    ),
    LicenseTerms(
        id="openrail++",
        name="CreativeML Open RAIL++-M License",
        version="2023-07-26",
        url="https://huggingface.co/stabilityai/stable-diffusion-xl-base-1.0/blob/main/LICENSE.md",
        family="responsible-ai",
        commercial_use=ALLOWED,
        field_of_use_restrictions=_RAIL_RESTRICTIONS,
        train_on_outputs=CONDITIONAL,
        attribution=_RAIL_ATTRIBUTION,
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="The license of Stable Diffusion XL (Stable Diffusion 2 used an earlier text of the same "
                "name): like CreativeML Open RAIL-M, commercial use is allowed under use-based restrictions. "
                f"{_RAIL_REDISTRIBUTION} Unlike it, the licensor only reserves the right to restrict "
                "violating uses, not to update the model or modify outputs.",
    ),
    LicenseTerms(
        id="bigscience-openrail-m",
        name="BigScience Open RAIL-M License",
        version="2022-08-18",
        url="https://bigscience.huggingface.co/blog/bigscience-openrail-m",
        family="responsible-ai",
        commercial_use=ALLOWED,
        field_of_use_restrictions=_RAIL_RESTRICTIONS,
        train_on_outputs=CONDITIONAL,
        attribution=_RAIL_ATTRIBUTION,
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="BigScience's general-purpose adaptation of the BLOOM license for any model: use, modify and "
                f"redistribute, commercial use included, under use-based restrictions. {_RAIL_REDISTRIBUTION} "
                f"{_RAIL_OUTPUTS}",
    ),
    LicenseTerms(
        id="bigscience-bloom-rail-1.0",
        name="BigScience RAIL License v1.0",
        version="1.0",
        url="https://huggingface.co/spaces/bigscience/license",
        family="responsible-ai",
        commercial_use=ALLOWED,
        field_of_use_restrictions=_RAIL_RESTRICTIONS + (
            "No generating content without expressly disclosing that it is machine-generated.",
            "No impersonating or attempting to impersonate others.",
        ),
        train_on_outputs=CONDITIONAL,
        attribution=_RAIL_ATTRIBUTION,
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="The license of BLOOM (dated 19 May 2022): use, modify and redistribute, commercial use "
                f"included, under use-based restrictions. {_RAIL_REDISTRIBUTION} {_RAIL_OUTPUTS}",
    ),
    LicenseTerms(
        id="mrl",
        name="Mistral AI Research License",
        version="0.1",
        url="https://mistral.ai/licenses/MRL-0.1.md",
        family="research-only",
        commercial_use=FORBIDDEN,
        field_of_use_restrictions=(
            ("Only for research purposes: personal, scientific or academic research that is non-profit and "
             "not connected to any commercial activity."),
            ("Use by employees or contractors of companies in their work, or in anything meant to generate "
             "revenue (tests and proofs of concept included), is outside the license."),
            "Any other use needs a separate license from Mistral AI.",
        ),
        train_on_outputs=CONDITIONAL,
        attribution="Give recipients a copy of the license and keep the notice that the model is licensed by "
                    "Mistral AI under the Mistral AI Research License.",
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="Mistral AI's research-only license: the model, its derivatives and its outputs may be used, "
                "modified and shared for non-commercial research only. Commercial use, including use inside "
                "a company's business or distribution by a commercial entity, needs a commercial license "
                "from Mistral AI.",
    ),
    LicenseTerms(
        id="mnpl",
        name="Mistral AI Non-Production License",
        version="0.1",
        url="https://mistral.ai/licenses/MNPL-0.1.md",
        family="non-commercial",
        commercial_use=FORBIDDEN,
        field_of_use_restrictions=(
            "Only for testing, research, personal or evaluation purposes in non-production environments.",
            ("The model and its derivatives may not be supplied in the course of a commercial activity, paid "
             "or free, including as a hosted service or behind a software layer."),
            "Production or commercial use needs a separate license from Mistral AI.",
        ),
        train_on_outputs=CONDITIONAL,
        attribution="Give recipients a copy of the license and keep Mistral AI's attribution notice.",
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="Mistral AI's non-production license: the model and its derivatives may be used for testing, "
                "research, personal or evaluation purposes, away from live use, revenue-generating activity "
                "and end users. Production and commercial use need a commercial license from Mistral AI.",
    ),
    LicenseTerms(
        id="other",
        name="Other license (named on the model card)",
        version="unspecified",
        url="https://huggingface.co/docs/hub/repositories-licenses",
        family="other",
        commercial_use=CONDITIONAL,
        train_on_outputs=CONDITIONAL,
        attribution="As the license text requires.",
        derivative_naming="As the license text requires.",
        redistribution=CONDITIONAL,
        osi_approved=False,
        summary="The model card names a license outside the Hub's list, through `license_name` and "
                "`license_link`. releasehub cannot summarise it, so every term here is marked conditional: "
                "read the license text.",
    ),
)

CATALOGUE: Mapping[str, LicenseTerms] = MappingProxyType({entry.id: entry for entry in _ENTRIES})
if len(CATALOGUE) != len(_ENTRIES):
    raise ValueError("A license id appears twice in the catalogue.")

# `license_name` spellings seen on `license: other` cards that mean a catalogue entry.
_NAME_ALIASES: Mapping[str, str] = MappingProxyType({"gemma-terms-of-use": "gemma"})


def _normalise(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip().lower()
    return value or None


def _text(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    return value.strip() or None


def get_license(license_id: str) -> LicenseTerms | None:
    """The catalogue entry for a Hub license id, ignoring case and surrounding spaces."""
    key = _normalise(license_id)
    return None if key is None else CATALOGUE.get(key)


def license_from_card(card_data: Mapping[str, Any] | None) -> ResolvedLicense:
    """Resolve the license fields of a model card's YAML header (`license`, `license_name`, `license_link`)."""
    card = card_data if isinstance(card_data, Mapping) else {}
    raw = card.get("license")
    values = raw if isinstance(raw, list) else [raw]
    ids = tuple(key for key in (_normalise(v) for v in values) if key is not None)
    card_name = _text(card.get("license_name"))
    card_link = _text(card.get("license_link"))
    if not ids:
        return ResolvedLicense(None, None, card_name, card_link, False, ())
    license_id = ids[0]
    terms = CATALOGUE.get(license_id)
    if license_id == "other" and card_name is not None:
        named = _normalise(card_name) or ""
        listed = CATALOGUE.get(_NAME_ALIASES.get(named, named))
        if listed is not None and listed.id != "other":
            terms = listed
            card_name = listed.name
    if terms is None:
        return ResolvedLicense(license_id, None, card_name or license_id, card_link, False, ids)
    if terms.id == "other":
        # The catalogue's address for `other` is the Hub's list, not this license's text.
        return ResolvedLicense(license_id, terms, card_name or terms.name, card_link, True, ids)
    return ResolvedLicense(license_id, terms, terms.name, card_link or terms.url, True, ids)


# ---------------------------------------------------------------------------------------------
# Display and acceptance


def _threshold(value: int | None) -> str:
    return "none" if value is None else f"{value:,} monthly active users"


def terms_table(terms: LicenseTerms | ResolvedLicense) -> list[tuple[str, str]]:
    """(label, value) rows for a CLI table or a web page; restrictions are joined into one row."""
    if isinstance(terms, ResolvedLicense):
        if terms.terms is None:
            return [
                ("License", terms.name or "none declared"),
                ("Identifier", terms.id or "none"),
                ("Text", terms.link or "not given"),
                ("Terms", "not in releasehub's catalogue: read the license text"),
            ]
        # The card's name and link describe this release better than the generic entry does.
        shown = {"License": terms.name or terms.terms.name, "Text": terms.link or "not given"}
        return [(label, shown.get(label, value)) for label, value in terms_table(terms.terms)]
    return [
        ("License", terms.name),
        ("Identifier", terms.id),
        ("Version", terms.version),
        ("Text", terms.url),
        ("Family", terms.family),
        ("Commercial use", terms.commercial_use),
        ("User threshold", _threshold(terms.user_threshold)),
        ("Train other models on outputs", terms.train_on_outputs),
        ("Redistribution", terms.redistribution),
        ("Attribution", terms.attribution or "none required"),
        ("Derivative naming", terms.derivative_naming or "no requirement"),
        ("OSI approved", "yes" if terms.osi_approved else "no"),
        ("Use restrictions", " ".join(terms.field_of_use_restrictions) or "none beyond the license"),
        ("Summary", terms.summary),
    ]


def _render_terms(terms: LicenseTerms) -> list[str]:
    lines = [f"{label}: {value}" for label, value in terms_table(terms) if label not in ("Use restrictions", "Summary")]
    lines.append("Use restrictions:")
    lines.extend(f"  - {r}" for r in terms.field_of_use_restrictions or ("none beyond the license",))
    lines.append(f"Summary: {terms.summary}")
    return lines


def _render(subject: LicenseTerms | ResolvedLicense) -> tuple[str, str]:
    lines = [f"Format: {ACCEPTANCE_FORMAT}"]
    if isinstance(subject, ResolvedLicense):
        lines.append(f"Model card license: {subject.id or 'none declared'}")
        lines.append(f"Model card license name: {subject.name or 'not given'}")
        lines.append(f"Model card license link: {subject.link or 'not given'}")
        terms = subject.terms
        if terms is None:
            lines.append("releasehub does not know these terms: the license text at the link above governs.")
            version = "unknown" if subject.id else "none"
            return "\n".join(lines) + "\n", version
        lines.append("")
    else:
        terms = subject
    lines.append("What follows is releasehub's summary; the license text at the address given governs.")
    lines.extend(_render_terms(terms))
    return "\n".join(lines) + "\n", terms.version


def license_text_for_acceptance(
    terms_or_resolved: LicenseTerms | ResolvedLicense, repo_license_file_text: str | None
) -> tuple[str, str, str]:
    """(text, sha256 hex of its UTF-8 bytes, version): exactly what a requester accepts.

    The repo's own LICENSE file wins when it has any content (version "repo"): it is the text the
    release ships. Otherwise the catalogue entry is rendered deterministically, so that the same
    entry always gives the same sha256 and any change to it (or to the rendering format) gives a
    new one, which makes earlier acceptances stale instead of silently carrying over.
    """
    if repo_license_file_text is not None and repo_license_file_text.strip():
        text, version = repo_license_file_text, REPO_VERSION
    else:
        text, version = _render(terms_or_resolved)
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest(), version


__all__ = [
    "ACCEPTANCE_FORMAT",
    "ALLOWED",
    "CATALOGUE",
    "CONDITIONAL",
    "FAMILIES",
    "FORBIDDEN",
    "PERMISSIONS",
    "REPO_VERSION",
    "LicenseTerms",
    "ResolvedLicense",
    "get_license",
    "license_from_card",
    "license_text_for_acceptance",
    "terms_table",
]
