"""Console fixtures: the real application on a test server, signed-in clients per role."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from govcast.app import create_app
from govcast.settings import SandboxSettings, Settings
from tests.conftest import PASSWORD

CSRF = re.compile(r'name="_csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = CSRF.search(html)
    assert match, "no CSRF field on the page"
    return match.group(1)


class Staff:
    """A signed-in browser-like client."""

    def __init__(self, client: TestClient, name: str) -> None:
        self.client = client
        self.name = name
        self.csrf = ""

    async def login(self, password: str = PASSWORD) -> Any:
        page = await self.client.get("/console/login")
        token = csrf_of(await page.text())
        response = await self.client.post(
            "/console/login",
            data={"_csrf": token, "name": self.name, "password": password, "next": "/console/"},
            allow_redirects=False,
        )
        if response.status == 303:
            home = await self.client.get("/console/")
            self.csrf = csrf_of(await home.text())
        return response

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.client.get(path, allow_redirects=False, **kwargs)

    async def post(self, path: str, data: Any = None, *, csrf: bool = True, **kwargs: Any) -> Any:
        if data is None:
            data = {}
        if csrf and isinstance(data, dict):
            data = {"_csrf": self.csrf, **data}
        return await self.client.post(path, data=data, allow_redirects=False, **kwargs)


@pytest.fixture
async def app_client(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, staff_members: Any
) -> TestClient:
    """The real application (web role only) on a test server."""
    app = create_app(settings, roles={"web"})
    return await aiohttp_client(app)


@pytest.fixture
async def signed_in(
    aiohttp_client: Callable[..., Awaitable[TestClient]], settings: Settings, staff_members: Any
) -> Callable[[str], Awaitable[Staff]]:
    """A factory of clients signed in as the named fixture staff member (one app)."""
    # The sandbox is not needed here (the browser test runs with it).
    settings = dataclasses.replace(settings, sandbox=SandboxSettings(enabled=False))
    app = create_app(settings, roles={"web"})
    from aiohttp.test_utils import TestServer

    server = TestServer(app)
    await server.start_server()
    clients: list[TestClient] = []

    async def make(name: str) -> Staff:
        client = TestClient(server)
        await client.start_server()
        clients.append(client)
        member = Staff(client, name)
        if not name:  # an anonymous browser
            return member
        response = await member.login()
        assert response.status == 303, await response.text()
        return member

    yield make  # type: ignore[misc]
    for client in clients:
        await client.close()
    await server.close()
