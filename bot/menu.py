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


class MenuUnavailable(Exception):
    """The WeChat channel, or the named account, is not available in this process."""


def menu_api(registry: Any, account: str) -> Any:
    """The WeChat API client of ``account`` from the channel registry."""
    try:
        channel = registry["wechat"]
    except KeyError:
        raise MenuUnavailable("the WeChat channel is not available") from None
    factory = getattr(channel, "api", None)
    if not callable(factory):
        raise MenuUnavailable("the WeChat channel is not available")
    # An unknown account is the channel's ConfigurationError (a DeliveryError).
    return factory(account)


async def push_menu(registry: Any, account: str, payload: dict[str, Any]) -> None:
    """``menu/create`` through the channel's API (the CLI and the console share this);
    raises DeliveryError with the platform's error, or MenuUnavailable."""
    await menu_api(registry, account).create_menu(payload)


async def fetch_menu(registry: Any, account: str) -> dict[str, Any]:
    """``menu/get``: the menu as the platform has it now (``{"menu": {"button": [...]}}``)."""
    result: dict[str, Any] = await menu_api(registry, account).get_menu()
    return result
