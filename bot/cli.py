"""Bot commands: ``govcast wechat menu push [--account KEY]``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

import aiohttp

from bot.menu import MenuUnavailable, menu_api, menu_payload, push_menu
from govcast import runtime
from govcast.settings import Settings, SettingsError
from publisher.outcomes import DeliveryError

EXIT_FAILED = 1


def register(subparsers: Any) -> None:
    """Add the ``wechat`` command group."""
    wechat = subparsers.add_parser("wechat", help="WeChat account tools")
    wechat_sub = wechat.add_subparsers(dest="wechat_command", required=True)
    menu = wechat_sub.add_parser("menu", help="the custom menu")
    menu_sub = menu.add_subparsers(dest="menu_command", required=True)
    push = menu_sub.add_parser("push", help="push [bot.menu] with menu/create")
    push.add_argument("--account", default="main", help="WeChat account key (default: main)")
    push.add_argument("--dry-run", action="store_true", help="print the payload only")
    push.set_defaults(handler=menu_push)


def menu_push(settings: Settings, args: argparse.Namespace) -> int:
    """Push the configured menu to one account."""
    if args.account not in settings.wechat.accounts:
        raise SettingsError(f"wechat.accounts.{args.account}", "no such account is configured")
    payload = menu_payload(settings)
    if args.dry_run:
        print(json.dumps(payload, ensure_ascii=False, indent=2))
        return 0
    return asyncio.run(_push(settings, args.account, payload))


async def _push(settings: Settings, account: str, payload: dict[str, Any]) -> int:
    db = runtime.database(settings)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            registry = runtime.build_channels(settings, db, http)
            try:
                await push_menu(registry, account, payload)
            except MenuUnavailable as exc:
                print(f"govcast: {exc}", file=sys.stderr)
                return EXIT_FAILED
            except DeliveryError as exc:
                print(f"govcast: menu/create failed: {exc}", file=sys.stderr)
                return EXIT_FAILED
    finally:
        await db.dispose()
    print(f"menu pushed to wechat:{account} ({len(payload['button'])} buttons)")
    return 0


def _api(registry: Any, account: str) -> Any:
    try:
        return menu_api(registry, account)
    except MenuUnavailable:
        return None
