"""Plain-text mail bodies from templates/email/, wrapped at 72 columns."""

import functools
import textwrap
from pathlib import Path

import jinja2

from app.core import timefmt

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

WIDTH = 72


def _wrap(text: str) -> str:
    """Wrap long lines, keeping short ones and quoting as they are."""
    lines = []
    for line in (text or "").splitlines():
        if len(line) <= WIDTH or line.startswith((">", " ", "\t")):
            lines.append(line)
        else:
            lines.extend(textwrap.wrap(line, WIDTH, break_long_words=True, break_on_hyphens=False))
    return "\n".join(lines)


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES / "email")),
        autoescape=False,  # noqa: S701  (plain text mail, never HTML)
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["wrap"] = _wrap
    env.filters["instant"] = functools.partial(timefmt.minute, missing="(not set)")
    return env


def render(name: str, **context) -> str:
    return _environment().get_template(f"{name}.txt").render(**context)
