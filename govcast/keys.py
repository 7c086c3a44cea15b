"""Typed keys of the shared resources in the aiohttp application.

A leaf module (it imports only settings, the Redis wrapper and core types), so every web
package may use it.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from govcast.rediscache import SharedRedis
from govcast.settings import Settings
from publisher.config import CoreConfig
from publisher.db import Database
from publisher.media import MediaStore

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
CORE = web.AppKey("core_config", CoreConfig)
MEDIA = web.AppKey("media_store", MediaStore)
HTTP = web.AppKey("http_client", aiohttp.ClientSession)
# Set only when ``[redis] url`` is: read it with ``app.get(keys.REDIS)``.
REDIS = web.AppKey("redis", SharedRedis)
# The channel registry and the worker are typed loosely here to keep this module a leaf.
CHANNELS: web.AppKey[object] = web.AppKey("channels", object)
WORKER: web.AppKey[object] = web.AppKey("worker", object)
STOP = web.AppKey("stop_event", asyncio.Event)
ROLES = web.AppKey("process_roles", frozenset)
