"""The session cookie is Secure when the deployment is served over HTTPS."""

from __future__ import annotations

import dataclasses
from typing import Any

from govcast.app import create_app
from govcast.settings import SandboxSettings
from tests.conftest import PASSWORD
from tests.console.conftest import csrf_of


async def test_secure_cookie_behind_https(
    aiohttp_client: Any, settings: Any, staff_members: Any
) -> None:
    https = dataclasses.replace(
        settings,
        website=dataclasses.replace(settings.website, base_url="https://gov.example"),
        sandbox=SandboxSettings(enabled=False),
    )
    client = await aiohttp_client(create_app(https, roles={"web"}))
    page = await client.get("/console/login")
    assert "Secure" in page.headers["Set-Cookie"]
    token = csrf_of(await page.text())
    # The client keeps Secure cookies for https only: send the login token by hand.
    response = await client.post(
        "/console/login",
        data={"_csrf": token, "name": "editor", "password": PASSWORD},
        headers={"Cookie": f"govcast_login_csrf={token}"},
        allow_redirects=False,
    )
    assert response.status == 303
    cookies = response.headers.getall("Set-Cookie")
    session = next(c for c in cookies if c.startswith("govcast_console="))
    assert "Secure" in session and "HttpOnly" in session and "SameSite=Strict" in session
