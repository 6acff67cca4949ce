"""HTML rendering shared by the served pages and the one-file report (Jinja2, autoescaped)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2


def plotly_js_path() -> Path:
    """The ``plotly.min.js`` bundled with the installed ``plotly`` package (never a CDN)."""
    return Path(str(resources.files("plotly").joinpath("package_data", "plotly.min.js")))


def static_path(name: str) -> Path:
    return Path(str(resources.files(__package__).joinpath("static", name)))


def _segment(value: Any) -> str:
    return quote(str(value), safe="")


def _query(params: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def _number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}"
    if isinstance(value, int | float):
        return f"{value:,.0f}" if isinstance(value, float) else f"{value:,}"
    return str(value)


def sparkline(values: list[int | None], width: int = 90, height: int = 18) -> str:
    """A tiny inline SVG of a series (None: a gap); numbers only, so nothing to escape."""
    known = [v for v in values if v is not None]
    top = max(known) if known and max(known) > 0 else 1
    step = width / max(1, len(values) - 1)
    points: list[list[str]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            points.append([])
            continue
        points[-1].append(f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}")
    lines = "".join(
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{" ".join(p)}"/>'
        for p in points
        if p
    )
    return (
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}">{lines}</svg>'
    )


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("company_activity.web", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seg"] = _segment
    env.filters["num"] = _number
    env.globals["query"] = _query
    env.globals["sparkline"] = sparkline
    return env


def render(template: str, **context: Any) -> str:
    """A page; ``context['inline']`` True embeds plotly.js, the app's script and style (the report)."""
    context.setdefault("inline", False)
    context.setdefault("base", "")
    if context["inline"]:
        context["inline_assets"] = {
            "plotly": plotly_js_path().read_text(encoding="utf-8").replace("</script", "<\\/script"),
            "js": static_path("app.js").read_text(encoding="utf-8"),
            "css": static_path("app.css").read_text(encoding="utf-8"),
        }
    return environment().get_template(template).render(**context)
