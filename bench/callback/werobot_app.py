"""WeRoBot 1.13.1 echo robot, served by gunicorn with 1 worker (sessions off, as in the
~2,300 req/s anchor; with its default SQLite session it manages ~80 req/s).

Run: gunicorn -w 1 -b 127.0.0.1:PORT --chdir bench/callback werobot_app:app
"""

# ruff: noqa: S106

from __future__ import annotations

from werobot import WeRoBot

robot = WeRoBot(
    token="spamtest",
    encoding_aes_key="abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    app_id="wx2c2769f8efd9abc2",
    enable_session=False,
)


@robot.text
def echo(message):  # type: ignore[no-untyped-def]
    return message.content


app = robot.wsgi
