"""First checks: sign-in, the dashboard and headers."""

from __future__ import annotations

from typing import Any


async def test_login_and_dashboard(signed_in: Any) -> None:
    editor = await signed_in("editor")
    response = await editor.get("/console/")
    assert response.status == 200
    text = await response.text()
    assert "工作台" in text
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
