"""Imports every model module so that the shared metadata knows all tables."""

from __future__ import annotations

import importlib

from publisher.orm import Base

# Each package with tables is listed here explicitly (no import scanning).
MODEL_MODULES = (
    "publisher.models",
    "channels.models",
    "website.models",
    "sandbox.models",
    "bot.models",
    "bot.cases.models",
    "console.models",
    "reports.models",
)

for _name in MODEL_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a package without tables yet
        if exc.name != _name:
            raise

metadata = Base.metadata
