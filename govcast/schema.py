"""Imports every model module so that the shared metadata knows all tables."""

from __future__ import annotations

import importlib

from publisher.orm import Base

# Each package with tables is listed here explicitly (no import scanning).
MODEL_MODULES = (
    "publisher.models",
    "channels.models",
    "channels.token_models",
    "website.models",
    "sandbox.models",
    "bot.models",
    "bot.cases.models",
    "bot.comments.models",
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

# Tables created by raw SQL in migrations (full-text indexes and their shadow tables) that
# have no model; Alembic's comparison must leave them alone. Matched by name prefix.
UNMANAGED_TABLE_PREFIXES: tuple[str, ...] = ("website_search_fts",)


def include_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic filter: skip unmanaged raw-SQL tables and dialect-conditional indexes."""
    if type_ == "index" and not reflected and getattr(obj, "_ddl_if", None) is not None:
        # An index declared for one dialect only (e.g. a GIN index) is created by hand in
        # its migration; comparing it on the other dialect would report false drift.
        return False
    if type_ == "table" and name and reflected and compare_to is None:
        return not name.startswith(UNMANAGED_TABLE_PREFIXES)
    return True
