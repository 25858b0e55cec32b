"""Request guards for a localhost server that any web page could try to reach (SPEC §6).

- Host allow-list: a DNS-rebinding page reaches us under its own name, so a Host that
  is not one of ours is refused (403) before anything else runs.
- Origin allow-list on every API request and WebSocket upgrade: a browser always sends
  Origin on cross-site requests, so a foreign one is CSRF or WebSocket hijacking (403).
  Requests without Origin (curl, scripts) are not from a browser page and pass.
- Optional bearer token on every API call (401), compared in constant time.
- CORS for the origins named with ``--allow-origin`` only: their preflights are
  answered, and API responses and ``/static/*`` (so that such a page can ``import``
  sessionManager.js) carry ``Access-Control-Allow-Origin`` for that one origin. Any
  other origin gets no CORS header at all, and its preflight is refused (403).
- Security headers on every response.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from .config import Config
from .errors import ApiError, Handler

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "[::1]"})
_WILDCARDS = {"", "0.0.0.0", "::", "[::]"}
WS_PATH = "/api/sessions/ws"
# What a configured origin may send: JSON bodies (Content-Type) and the bearer token.
CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"
CORS_EXPOSE = "Content-Disposition"  # the export's file name
CORS_MAX_AGE = "600"


def _bracket(host: str) -> str:
    host = host.strip().lower()
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def split_host(value: str) -> tuple[str, int | None]:
    """``name[:port]`` (IPv6 in brackets) as (lowercase name, port or None); raises
    ValueError for anything malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.index("]")
        name, rest = value[: end + 1], value[end + 1 :]
    else:
        name, _, port_text = value.partition(":")
        rest = ":" + port_text if _ else ""
    if not name:
        raise ValueError("empty host")
    if not rest:
        return name, None
    if not rest.startswith(":") or not rest[1:].isdigit():
        raise ValueError(f"bad port in {value!r}")
    return name, int(rest[1:])


def local_port(request: web.Request, default: int) -> int:
    """The port this connection actually reached (the configured one may be 0)."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        return int(sockname[1])
    return default


class Guard:
    """The allow-lists and token of one server."""

    def __init__(self, config: Config) -> None:
        names = set(LOOPBACK_NAMES)
        if config.host.strip().lower() not in _WILDCARDS:
            names.add(_bracket(config.host))
        self.names = frozenset(names)
        self.origins = frozenset(o.strip().rstrip("/").lower() for o in config.allow_origins)
        self.token = config.token.encode() if config.token else None
        self.default_port = config.port
        # Host header -> (ours?, port): every request sends one of a handful of values
        self._hosts: dict[str, tuple[bool, int | None]] = {}

    def host_ok(self, request: web.Request) -> bool:
        value = request.headers.get("Host")
        if value is None:
            return True  # HTTP/1.0 without Host: no browser sends that
        known = self._hosts.get(value)
        if known is None:
            try:
                name, port = split_host(value)
                known = (name in self.names, port)
            except ValueError:
                known = (False, None)
            if len(self._hosts) < 64:  # foreign values are not worth keeping
                self._hosts[value] = known
        ours, port = known
        return ours and (port is None or port == local_port(request, self.default_port))

    def cors_origin(self, request: web.Request) -> str | None:
        """The request's Origin as sent, if it is one configured with --allow-origin;
        the server's own origin needs no CORS, and any other gets none."""
        origin = request.headers.get("Origin")
        if origin is None or origin.strip().rstrip("/").lower() not in self.origins:
            return None
        return origin.strip()

    def origin_ok(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        origin = origin.strip().rstrip("/").lower()
        if origin in self.origins:
            return True
        try:
            parts = urlsplit(origin)
            name, port = split_host(parts.netloc)
        except ValueError:
            return False  # includes the opaque "null" origin of sandboxed frames and files
        if parts.scheme not in ("http", "https") or name not in self.names:
            return False
        if port is None:
            port = 443 if parts.scheme == "https" else 80
        return port == local_port(request, self.default_port)

    def token_matches(self, presented: str | None) -> bool:
        if self.token is None:
            return True
        return presented is not None and hmac.compare_digest(presented.encode(), self.token)

    def bearer(self, request: web.Request) -> str | None:
        value = request.headers.get("Authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def make_middleware(guard: Guard) -> Middleware:
    @web.middleware
    async def security_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if not guard.host_ok(request):
            raise ApiError(
                "forbidden",
                f"Host {request.headers.get('Host')!r} is not allowed: use http://127.0.0.1 "
                "or http://localhost with this server's port",
            )
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            return preflight(guard, request)
        if not request.path.startswith("/api/"):
            return await handler(request)  # the page and its files: no token, no origin check
        if not guard.origin_ok(request):
            raise ApiError(
                "forbidden",
                f"Origin {request.headers.get('Origin')!r} is not allowed: start the server "
                "with --allow-origin to let that page use the API",
            )
        if guard.token is not None:
            presented = guard.bearer(request)
            upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
            if (
                request.path == WS_PATH
                and presented is None
                and (upgrade or request.query.get("token") is not None)
            ):
                # Browsers cannot set headers on a WebSocket: ?token= or an auth frame,
                # which the WebSocket handler checks once the upgrade is done.
                return await handler(request)
            if not guard.token_matches(presented):
                raise ApiError(
                    "unauthorized",
                    "missing or wrong token: send the header 'Authorization: Bearer <token>' "
                    "(the token the server was started with)",
                )
        return await handler(request)

    return security_middleware


def preflight(guard: Guard, request: web.Request) -> web.StreamResponse:
    """Answer a CORS preflight: granted (204) for a configured origin asking for what
    the API takes, refused (403, no CORS header, so the browser blocks the request)
    for anything else. It needs no token: browsers never send one with a preflight."""
    origin = guard.cors_origin(request)
    if origin is None:
        raise ApiError(
            "forbidden",
            f"Origin {request.headers.get('Origin')!r} may not make cross-origin requests: "
            "start the server with --allow-origin ORIGIN to let that page use the API",
        )
    method = request.headers.get("Access-Control-Request-Method", "").strip().upper()
    asked = request.headers.get("Access-Control-Request-Headers", "")
    allowed = {h.strip().lower() for h in CORS_HEADERS.split(",")}
    extra = sorted({h.strip().lower() for h in asked.split(",") if h.strip()} - allowed)
    if method not in CORS_METHODS.split(", ") or extra:
        what = f"headers {', '.join(extra)}" if extra else f"method {method or '(none)'}"
        raise ApiError(
            "forbidden",
            f"cross-origin {what} not allowed: the API takes GET and POST with the "
            f"headers {CORS_HEADERS}",
        )
    return web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": CORS_METHODS,
            "Access-Control-Allow-Headers": CORS_HEADERS,
            "Access-Control-Max-Age": CORS_MAX_AGE,
        },
    )


@functools.lru_cache(maxsize=32)  # keyed by an allowed Host: a handful of values
def content_security_policy(host: str) -> str:
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self' ws://{host} wss://{host}; object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )


def make_header_hook(
    guard: Guard,
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
        """on_response_prepare: harden every response; the page also gets a strict CSP."""
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "no-referrer")
        # Answers differ by Origin: a cache must not hand one origin's to another.
        h.add("Vary", "Origin")
        cors = guard.cors_origin(request)  # None without an Origin header: the usual case
        if cors is not None and not guard.host_ok(request):
            cors = None
        if cors is not None:
            h["Access-Control-Allow-Origin"] = cors
            h["Access-Control-Expose-Headers"] = CORS_EXPOSE
        if request.path.startswith("/api/"):
            h.setdefault("Cache-Control", "no-store")
            return
        h.setdefault("X-Frame-Options", "DENY")
        # A configured origin may load our files (sessionManager.js and its imports).
        h.setdefault("Cross-Origin-Resource-Policy", "cross-origin" if cors else "same-origin")
        # echo the Host into the policy only once it is known to be one of ours
        host = request.host if guard.host_ok(request) else "127.0.0.1"
        h.setdefault("Content-Security-Policy", content_security_policy(host))

    return add_security_headers
