"""Templating: Kestra's Pebble expression language on Jinja2's sandbox (see ``engine``)."""

from kray.templating.engine import TemplateEngine, TemplateServices
from kray.templating.values import is_truthy

__all__ = ["TemplateEngine", "TemplateServices", "is_truthy"]
