"""Typed keys of the console's own resources."""

from __future__ import annotations

import jinja2
from aiohttp import web

JINJA = web.AppKey("console_jinja", jinja2.Environment)
