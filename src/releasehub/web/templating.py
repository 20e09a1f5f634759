"""Rendering pages: one Jinja2 environment (autoescaped) and sanitised markdown for cards.

Cards, license texts and form answers are user content. Markdown is rendered by markdown-it-py
(raw HTML allowed, as on the Hub) and the result is cleaned by nh3 (ammonia) with an allowlist:
no script or style elements, no event handlers, only http(s)/mailto and relative URLs. The
Content-Security-Policy of every page (`routing.SECURITY_HEADERS`) is a second wall.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import nh3
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from markupsafe import Markup

from releasehub import __version__
from releasehub.web.auth import CSRF_FIELD, Viewer

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

_markdown = MarkdownIt("commonmark", {"html": True, "linkify": False}).enable(["table", "strikethrough"])

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "div", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s", "span",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
    "ol": {"start"},
    "code": {"class"},
    "details": {"open"},
}


def sanitise(html: str) -> str:
    return nh3.clean(html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
                     url_schemes={"http", "https", "mailto"}, link_rel="noopener noreferrer nofollow",
                     strip_comments=True)


def render_markdown(text: str) -> Markup:
    """Markdown (user content) to safe HTML."""
    return Markup(sanitise(_markdown.render(text)))  # noqa: S704 - sanitised just above


def card_body(text: str) -> str:
    """README.md without its YAML front matter."""
    normalized = text.replace("\r\n", "\n")
    if normalized.startswith("---\n"):
        end = normalized.find("\n---", 3)
        if end != -1:
            rest = normalized[end + 4:]
            return rest.split("\n", 1)[1] if "\n" in rest else ""
    return normalized


def human_size(size: int | float | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "—"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "svg"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["size"] = human_size
    env.filters["when"] = when
    env.filters["markdown"] = render_markdown
    env.globals["version"] = __version__
    env.globals["csrf_field"] = CSRF_FIELD
    return env


ENV = _environment()


def render(request: Request, template: str, context: dict[str, Any], *, status: int = 200,
           viewer: Viewer | None = None, headers: dict[str, str] | None = None) -> HTMLResponse:
    viewer = viewer or getattr(request.state, "viewer", None)
    page = ENV.get_template(template).render(request=request, viewer=viewer, **context)
    return HTMLResponse(page, status_code=status, headers=headers)
