"""Render one of the package's Jinja2 templates, with autoescaping, into a self-contained page."""

from __future__ import annotations


def render(template: str, **context) -> str:
    """Render ``templates/<template>`` with ``context``."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("imgcls.report", "templates"),
                      autoescape=select_autoescape(["html", "j2"]))
    return env.get_template(template).render(**context)
