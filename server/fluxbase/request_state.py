"""What middlewares learn about a request and later stages read: typed request-storage keys."""

from __future__ import annotations

from aiohttp import web

REQUEST_ID = web.RequestKey("request_id", str)
CLIENT_IP = web.RequestKey("client_ip", str)
# Set by authentication once a user's token is verified; the access log reports it.
USER_ID = web.RequestKey("user_id", str)
