"""The custom menu: settings -> the ``menu/create`` payload (pure)."""

from __future__ import annotations

from typing import Any

from govcast.settings import MenuButtonSettings, Settings, SettingsError


def _button(button: MenuButtonSettings) -> dict[str, Any]:
    if button.sub:
        return {"name": button.name, "sub_button": [_button(b) for b in button.sub.values()]}
    if button.type == "click":
        return {"type": "click", "name": button.name, "key": button.key}
    return {"type": "view", "name": button.name, "url": button.url}


def menu_payload(settings: Settings) -> dict[str, Any]:
    """``{"button": [...]}`` for ``menu/create``; SettingsError if no menu is configured."""
    if not settings.bot.menu:
        raise SettingsError("bot.menu", "no menu is configured")
    return {"button": [_button(b) for b in settings.bot.menu.values()]}


def click_keys(settings: Settings) -> list[str]:
    """Every CLICK key of the configured menu, in menu order."""
    keys: list[str] = []
    for top in settings.bot.menu.values():
        for button in (top, *top.sub.values()):
            if button.type == "click":
                keys.append(button.key)
    return keys
