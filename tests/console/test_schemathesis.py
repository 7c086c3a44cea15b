"""Schemathesis against the running API: every documented operation, generated inputs,
responses checked against the OpenAPI document (no 500s, documented statuses, schemas)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from console.api import API_LIMITS, ApiLimits, openapi_document
from console.models import ApiToken
from console.security import digest
from govcast import keys
from govcast.app import create_app
from publisher import staff, workflow
from publisher.models import Membership, Role, User
from tests.conftest import make_settings

SCOPES = [
    "publications:read",
    "publications:write",
    "publications:review",
    "cases:read",
    "cases:write",
    "search",
]
TOKEN = "gct_schemathesis-test-token-0000000000000000"


@pytest.fixture
def api_server(tmp_path: Path, sqlite_template: Path) -> Iterator[str]:
    """The real application on a free port, served from its own thread and loop (the
    generated requests are synchronous)."""
    target = tmp_path / "govcast.sqlite3"
    target.write_bytes(sqlite_template.read_bytes())
    config = make_settings(tmp_path, f"sqlite+aiosqlite:///{target}", **{"sandbox.enabled": False})
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def start() -> None:
        app = create_app(config, roles={"web"})
        # Thousands of generated requests a minute: the limits are tested elsewhere.
        app[API_LIMITS] = ApiLimits(per_token=1_000_000, bad_token_per_address=1_000_000)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        state["port"] = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        state["runner"] = runner
        async with app[keys.DB].transaction() as session:
            office = await workflow.office_by_key(session, config.office.key)
            user = User(name="oa", display_name="OA", password_hash=staff.hash_password("x" * 12))
            user.memberships = [Membership(office_id=office.id, role=Role.ADMIN.value)]
            session.add(user)
            await session.flush()
            session.add(
                ApiToken(
                    user_id=user.id,
                    name="oa",
                    prefix=TOKEN[:12],
                    token_hash=digest(TOKEN),
                    scopes=SCOPES,
                )
            )

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="api-under-test", daemon=True)
    thread.start()
    assert ready.wait(60), "the server did not start"
    try:
        yield f"http://127.0.0.1:{state['port']}"
    finally:
        asyncio.run_coroutine_threadsafe(state["runner"].cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


def test_generated_requests_conform_to_the_document(api_server: str) -> None:
    schema = schemathesis.openapi.from_dict(openapi_document(api_server))
    headers = {"Authorization": f"Bearer {TOKEN}"}
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        def run(case: Any) -> None:
            # Schema-valid is not always acceptable (a past publish_at, an unconfigured
            # channel): the rules live in the core, so a 422 for valid-looking data is
            # allowed; every other check (no 500, documented statuses, content types,
            # response schemas, auth enforced, invalid data refused) applies.
            case.call_and_validate(
                base_url=f"{api_server}/api/v1",
                headers=headers,
                excluded_checks=[positive_data_acceptance],
            )

        try:
            run()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
