"""The access-profile page of a release and the comparison page: the paper's tables, and charts.

Both show only what the viewer may see: a repo's profile is built from its files as far as
`decide` lets this viewer list and download them (the API's `split_view` rule, through
`repo_pages.profile_of`), and a repo the viewer may not read is "not found" on the comparison
page in exactly the words a missing one is. The default view is the cached profile; a chosen
context length or accelerator recomputes it with those options, as `releasehub analyze
--context N --gpu X` does, without caching (the cache keeps the default options only).
Charts are inline SVG (`analysis.svg`), whose numbers are also given as tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

from fastapi import APIRouter, Depends, Request, Response
from markupsafe import Markup
from sqlalchemy.orm import Session

from releasehub.access import Permission
from releasehub.analysis import resourcing as r
from releasehub.analysis.catalogue import CatalogueEntry, find_model, load_catalogue
from releasehub.analysis.compare import compare_sections
from releasehub.analysis.hardware import ACCELERATORS, find_accelerator
from releasehub.analysis.profile import Options, build_profile
from releasehub.analysis.readers.source import AnalysisError
from releasehub.analysis.render import Section, profile_sections
from releasehub.analysis.service import split_view, view_profile
from releasehub.analysis.svg import Chart, context_chart, memory_chart
from releasehub.errors import BadRequest, ReleasehubError
from releasehub.hubapi.deps import RepoContext, get_services, get_session, repo_context
from releasehub.repos import service as repos
from releasehub.services import Services
from releasehub.web.auth import RepoPage, Viewer, page_repo, page_requires
from releasehub.web.repo_pages import base_context, profile_of
from releasehub.web.routing import PageRoute
from releasehub.web.templating import render

router = APIRouter(route_class=PageRoute, include_in_schema=False)

DEFAULT_GPU = "h100-80gb"
MAX_MODELS = 6
MAX_CONTEXT = 1 << 24  # 16M tokens: beyond any published context window
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_NUMBER = re.compile(r"^\$?[\d,.]+(\s?[A-Za-z/%]+)?(\s\([\d,.]+\s?[A-Za-z]+\))?$")


@dataclass(frozen=True)
class Choice:
    """The viewer's options: None means the default (the model's maximum context, every accelerator)."""

    context: int | None = None
    gpu: str | None = None  # an accelerator id
    context_text: str = ""
    gpu_text: str = ""

    @property
    def default(self) -> bool:
        return self.context is None and self.gpu is None

    @property
    def chart_gpu(self) -> str:
        return self.gpu or DEFAULT_GPU

    def options(self) -> Options | None:
        """As the CLI builds them from --context and --gpu; None for the default (cached) profile."""
        if self.default:
            return None
        options = Options(context=self.context, assumptions=replace(r.Assumptions(), context=self.context))
        return replace(options, gpus=(self.gpu,)) if self.gpu else options


def parse_choice(context: str | None, gpu: str | None) -> Choice:
    """The form's values, checked; BadRequest says what is wrong in words a person can act on."""
    context_text, gpu_text = (context or "").strip(), (gpu or "").strip()
    value: int | None = None
    if context_text:
        digits = context_text.replace(",", "").replace("_", "")
        if not digits.isdigit() or not 0 < int(digits) <= MAX_CONTEXT:
            raise BadRequest(f"The context length must be a whole number of tokens from 1 to {MAX_CONTEXT:,}; "
                             f"{context_text[:40]!r} is not.")
        value = int(digits)
    accelerator: str | None = None
    if gpu_text:
        try:
            accelerator = find_accelerator(gpu_text[:80]).id
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
    return Choice(value, accelerator, context_text, gpu_text)


def repo_profile(ctx: RepoContext, choice: Choice) -> dict[str, Any] | None:
    """The profile of the default branch as this viewer may see it, under the viewer's options."""
    commit = repos.resolve_revision(ctx.session, ctx.repo, repos.DEFAULT_BRANCH)
    files = ctx.visible_files(repos.commit_files(ctx.session, commit))
    options = choice.options()
    if options is None:
        return profile_of(ctx, commit, files)
    readable, listed = split_view(files, ctx.visible, lambda path: ctx.decide(Permission.REPO_DOWNLOAD, path).allowed)
    try:
        return view_profile(ctx.services.store, ctx.repo.repo_id, commit, readable, listed, options)
    except (AnalysisError, ReleasehubError):
        return None


# ---------------------------------------------------------------------------------------------
# Sections as tables


def table_of(section: Section, index: int) -> dict[str, Any]:
    """A Section for the template: a header row when it has column names, row headers, numeric cells."""
    rows = [[(str(cell), bool(_NUMBER.match(str(cell)))) for cell in row] for row in section.rows]
    return {"id": f"t{index}", "title": section.title, "head": list(section.columns) if any(section.columns) else None,
            "rows": rows, "text": list(section.text)}


def _group(title: str) -> str:
    if title.startswith(("Model Openness Framework", "OSI ")):
        return "Openness"
    if title in ("Technical usability", "Utility", "Notes"):
        return title
    return "Resourcing"


GROUPS = ("Resourcing", "Technical usability", "Utility", "Openness", "Notes")


def grouped_tables(profile: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[str, list[dict[str, Any]]]]]:
    """The model facts, then the paper's three tables (resourcing, usability, utility), openness and notes."""
    sections = profile_sections(profile)
    groups: dict[str, list[dict[str, Any]]] = {name: [] for name in GROUPS}
    for index, section in enumerate(sections[1:], start=1):
        groups[_group(section.title)].append(table_of(section, index))
    return table_of(sections[0], 0), [(name, tables) for name, tables in groups.items() if tables]


def openness_summary(profile: Mapping[str, Any]) -> dict[str, Any]:
    openness = profile.get("openness") or {}
    mof, osi = openness.get("mof") or {}, openness.get("osi") or {}
    return {"mof": mof.get("label") if openness.get("mof_class") else None, "reason": mof.get("reason"),
            "missing": list(mof.get("missing_for_next_class") or []), "osi": osi.get("verdict")}


def charts_of(profiles: Sequence[Mapping[str, Any]], gpu: str) -> list[dict[str, Any]]:
    charts: list[Chart] = [memory_chart(profiles, "memory-chart"), context_chart(profiles, gpu, "context-chart")]
    # svg.py escapes every text it writes (model names included), so the element is safe to embed.
    return [{"chart": chart, "svg": Markup(chart.svg)} for chart in charts]  # noqa: S704


def accelerator_choices() -> list[tuple[str, str]]:
    return [(a.id, a.name) for a in ACCELERATORS]


# ---------------------------------------------------------------------------------------------
# The access-profile page


@router.get("/{namespace}/{name}/access-profile")
def profile_page(request: Request, page: RepoPage = Depends(page_repo(Permission.REPO_READ)),
                 context: str | None = None, gpu: str | None = None) -> Response:
    error, status = None, 200
    try:
        choice = parse_choice(context, gpu)
    except BadRequest as exc:
        # The form again with the error in place; below it, the default profile.
        error, status = exc.message, exc.status_code
        choice = Choice(context_text=(context or "")[:40], gpu_text=(gpu or "")[:80])
    profile = repo_profile(page.ctx, choice)  # after an error, `choice` holds no option: the defaults
    body: dict[str, Any] = {}
    if profile is not None:
        facts, groups = grouped_tables(profile)
        restricted = profile.get("restricted") or {}
        body = {"facts": facts, "groups": groups, "openness": openness_summary(profile),
                "charts": charts_of([profile], choice.chart_gpu), "restricted": restricted}
    context_data = {**base_context(page, "profile"), "profile": profile, "choice": choice, "error": error,
                    "accelerators": accelerator_choices(), **body}
    return render(request, "profile.html", context_data, status=status)


# ---------------------------------------------------------------------------------------------
# The comparison page


def _catalogue_entry(name: str) -> CatalogueEntry | None:
    if "/" not in name:
        return find_model(name)
    entry = find_model(name)  # a Hub id such as meta-llama/Llama-3.1-8B-Instruct, only when exact
    return entry if entry is not None and (entry.hub_id or "").lower() == name.lower() else None


def _readable_repo(session: Session, services: Services, viewer: Viewer, name: str) -> RepoContext | None:
    """The repo when the viewer may read it; None for a missing and a hidden one alike."""
    if not REPO_ID.match(name):
        return None
    namespace, _, repo_name = name.partition("/")
    try:
        return repo_context(session, viewer.subject, services, namespace, repo_name, Permission.REPO_READ)
    except ReleasehubError:
        return None


def not_found_message(name: str) -> str:
    # One sentence for a missing repo and for one the viewer may not read: it must not tell them apart.
    return f"{name}: not found (no repository you can read and no catalogue model has this name)."


def profiles_for(names: list[str], session: Session, services: Services, viewer: Viewer,
                 choice: Choice) -> tuple[list[dict[str, Any]], list[str]]:
    profiles: list[dict[str, Any]] = []
    problems: list[str] = []
    options = choice.options() or Options()
    for name in names:
        ctx = _readable_repo(session, services, viewer, name)
        if ctx is not None:
            try:
                profile = repo_profile(ctx, choice)
            except ReleasehubError:
                profile = None
            if profile is None:
                problems.append(f"{name}: no access profile could be built from the files you can see.")
            else:
                profiles.append(profile)
            continue
        entry = _catalogue_entry(name)
        if entry is None:
            problems.append(not_found_message(name))
        else:
            profiles.append(build_profile(None, entry=entry, options=options))
    return profiles, problems


def model_names(text: str | None) -> list[str]:
    names: list[str] = []
    for part in (text or "").split(","):
        name = part.strip()[:200]
        if name and name not in names:
            names.append(name)
    return names


@router.get("/compare")
def compare_page(request: Request, viewer: Viewer = Depends(page_requires(Permission.REPO_LIST)),
                 session: Session = Depends(get_session), services: Services = Depends(get_services),
                 models: str | None = None, context: str | None = None, gpu: str | None = None) -> Response:
    names = model_names(models)
    data: dict[str, Any] = {"models": (models or "")[:1000], "accelerators": accelerator_choices(),
                            "catalogue": list(load_catalogue().values()), "choice": Choice(), "problems": [],
                            "error": None, "sections": [], "charts": []}
    if not names:
        return render(request, "compare.html", data)
    try:
        choice = parse_choice(context, gpu)
        if len(names) > MAX_MODELS:
            raise BadRequest(f"Compare at most {MAX_MODELS} models at once; {len(names)} were given.")
    except BadRequest as exc:
        data.update(error=exc.message, choice=Choice(context_text=(context or "")[:40], gpu_text=(gpu or "")[:80]))
        return render(request, "compare.html", data, status=exc.status_code)
    profiles, problems = profiles_for(names, session, services, viewer, choice)
    data.update(choice=choice, problems=problems)
    if profiles:
        data["sections"] = [table_of(s, i) for i, s in enumerate(compare_sections(profiles, gpu=choice.chart_gpu))]
        data["charts"] = charts_of(profiles, choice.chart_gpu)
    return render(request, "compare.html", data, status=200 if profiles else 404)
