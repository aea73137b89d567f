"""The conference service's HTTP API.

- `POST /verify/user`, `POST /verify/user_in_room`: the reference verification
  service's API, for Jitsi's Prosody module; callers present the bearer token
  Homeport generated. Answers are always 200 once the request is well formed,
  as the reference service's are: `results` says what was proven.
- `POST /jitsi/token`: an HS256 token for Jitsi's plain token authentication,
  for a member of the room (moderator from `state_default`).
- `POST /get_token`, `POST /sfu/get`: Element Call's authoriser API
  (lk-jwt-service), answering `{url, jwt}` with a LiveKit token.
- `GET /.well-known/element/jitsi`, `GET /health`, `GET /metrics` (Prometheus;
  from this machine, or with the bearer token).

The client-facing endpoints carry their credential (an OpenID token) in the
body, never in a cookie, so they answer any origin (CORS `*`) and need no
CSRF token.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Lifespan

from homeport.conference import tokens
from homeport.conference.decide import (
    Refused,
    RoomFacts,
    verify_user_answer,
    verify_user_in_room_answer,
)
from homeport.conference.limits import CallerLimits
from homeport.conference.secrets import Secrets
from homeport.config.conference import Conference
from homeport.config.types import duration_ms

logger = logging.getLogger("homeport.conference")

MAX_BODY_BYTES = 16 * 1024
LIVEKIT_TTL_SECONDS = 3600  # as lk-jwt-service: a token only admits; the call outlives it
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST",
    "Access-Control-Allow-Headers": "Accept, Content-Type, Content-Length, Accept-Encoding",
    "Access-Control-Max-Age": "600",
}


class MatrixReads(Protocol):
    """What the API needs of Matrix (`homeport.conference.matrix.Matrix` is the real one)."""

    own_servers: set[str]

    async def user_of(
        self, server_name: str, token: str, expires_in: float | None = None
    ) -> str: ...

    async def room_facts(self, room_id: str, user_id: str) -> RoomFacts | None: ...


class BadRequest(Exception):
    """The request is malformed; answered 400 with the message."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "homeport_conference_requests",
            "Requests by endpoint and outcome (ok, refused, bad_request, limited, error).",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "homeport_conference_request_seconds",
            "Time to answer, by endpoint (checks with homeservers included).",
            ["endpoint"],
            registry=self.registry,
        )


@dataclass(frozen=True)
class Settings:
    conference: Conference
    secrets: Secrets


async def _json_body(request: Request) -> dict[str, Any]:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise BadRequest(f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
    except ValueError:
        raise BadRequest("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body is not a JSON object")
    return data


def _field(data: dict[str, Any], *path: str) -> str:
    value: Any = data
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, str) or not value:
        name = ".".join(path)
        raise BadRequest(
            f"Invalid request: {name} not found or with empty value in the JSON payload."
        )
    return value


def _optional(data: dict[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"Invalid request: {key} must be a string.")
    return value


def _openid_token(data: dict[str, Any]) -> tuple[str, str]:
    """The OpenID token Element Call passes on, and the homeserver that issued it."""
    token = _field(data, "openid_token", "access_token")
    return token, _field(data, "openid_token", "matrix_server_name")


def _expires_in(data: dict[str, Any]) -> float | None:
    """The token's remaining life as the caller states it (seconds), if it does."""
    openid = data.get("openid_token")
    value = openid.get("expires_in") if isinstance(openid, dict) else None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _is_local(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    settings: Settings,
    matrix: MatrixReads,
    metrics: Metrics | None = None,
    limits: CallerLimits | None = None,
    lifespan: Lifespan[Starlette] | None = None,
) -> Starlette:
    conference, secrets = settings.conference, settings.secrets
    metrics = metrics or Metrics()
    limits = limits or CallerLimits()
    expected_auth = f"Bearer {secrets.auth_token}".encode()

    def bearer_ok(request: Request) -> bool:
        given = request.headers.get("authorization", "").encode()
        return hmac.compare_digest(given, expected_auth)

    def endpoint(
        name: str, *, bearer: bool, cors: bool, lk_errors: bool = False
    ) -> Callable[[Handler], Handler]:
        """Count, time and map refusals; errors in lk-jwt-service's shape where asked."""

        def wrap(handler: Handler) -> Handler:
            async def run(request: Request) -> Response:
                extra = CORS_HEADERS if cors else {}
                if request.method == "OPTIONS":
                    return Response(status_code=200, headers=extra)
                started = time.monotonic()
                outcome = "ok"
                caller = request.client.host if request.client else ""
                wait = limits.take(caller, started)
                if wait:
                    metrics.requests.labels(name, "limited").inc()
                    return JSONResponse(
                        {
                            "errcode": "M_LIMIT_EXCEEDED",
                            "error": "too many requests from this address",
                            "retry_after_ms": int(wait * 1000) + 1,
                        },
                        status_code=429,
                        headers={**extra, "Retry-After": str(int(wait) + 1)},
                    )
                try:
                    if bearer and not bearer_ok(request):
                        outcome = "refused"
                        return JSONResponse({}, status_code=403)
                    response: Response = await handler(request)
                except BadRequest as error:
                    outcome = "bad_request"
                    if lk_errors:
                        body = {"errcode": "M_BAD_JSON", "error": str(error)}
                        return JSONResponse(body, status_code=400, headers=extra)
                    return PlainTextResponse(str(error), status_code=400, headers=extra)
                except Refused as error:
                    outcome = "refused"
                    logger.info("refused", extra={"endpoint": name, "reason": str(error)})
                    return JSONResponse(
                        {"errcode": error.errcode, "error": str(error)},
                        status_code=error.status,
                        headers=extra,
                    )
                except Exception:
                    outcome = "error"
                    logger.exception("failed", extra={"endpoint": name})
                    return JSONResponse(
                        {"errcode": "M_UNKNOWN", "error": "the service failed; see its log"},
                        status_code=500,
                        headers=extra,
                    )
                finally:
                    metrics.requests.labels(name, outcome).inc()
                    metrics.seconds.labels(name).observe(time.monotonic() - started)
                response.headers.update(extra)
                return response

            return run

        return wrap

    async def who(server_name: str | None, token: str) -> str | None:
        """The token's user, or None; without a server name, each of ours is asked.

        Element versions that predate `server_name` in their Jitsi token make
        Prosody leave `matrix_server_name` out. A token is a random secret its
        homeserver issued, so the one homeserver that knows it names its user.
        """
        for server in [server_name] if server_name else sorted(matrix.own_servers):
            try:
                return await matrix.user_of(server, token)
            except Refused as error:
                reason = str(error)
                logger.info("token not vouched for", extra={"server": server, "reason": reason})
        return None

    @endpoint("verify_user", bearer=True, cors=False)
    async def verify_user(request: Request) -> Response:
        data = await _json_body(request)
        token, server = _field(data, "token"), _optional(data, "matrix_server_name")
        return JSONResponse(verify_user_answer(await who(server, token)))

    @endpoint("verify_user_in_room", bearer=True, cors=False)
    async def verify_user_in_room(request: Request) -> Response:
        data = await _json_body(request)
        token, room_id = _field(data, "token"), _field(data, "room_id")
        user_id = await who(_optional(data, "matrix_server_name"), token)
        facts = None if user_id is None else await matrix.room_facts(room_id, user_id)
        return JSONResponse(verify_user_in_room_answer(user_id, facts))

    async def member(
        server: str, token: str, room_id: str, expires_in: float | None = None
    ) -> tuple[str, RoomFacts]:
        user_id = await matrix.user_of(server, token, expires_in)
        facts = await matrix.room_facts(room_id, user_id)
        if facts is None:
            raise Refused("no homeserver of this deployment is in that room", status=403)
        if not facts.joined:
            raise Refused(f"{user_id} is not a member of that room", status=403)
        return user_id, facts

    @endpoint("jitsi_token", bearer=False, cors=True)
    async def jitsi_token(request: Request) -> Response:
        jitsi = conference.jitsi
        if jitsi is None or secrets.jitsi is None:
            raise Refused("Jitsi tokens are not configured here", status=404, errcode="M_NOT_FOUND")
        data = await _json_body(request)
        token, server = _field(data, "token"), _field(data, "matrix_server_name")
        room_id = _field(data, "room_id")
        user_id, facts = await member(server, token, room_id)
        person = tokens.Person(user_id, facts.displayname or user_id, facts.avatar_url)
        moderator = facts.moderator(user_id)
        claims = tokens.jitsi_claims(
            person,
            room_id,
            app_id=jitsi.app_id,
            domain=jitsi.domain,
            moderator=moderator,
            now=int(time.time()),
            ttl_seconds=duration_ms(jitsi.ttl) // 1000,
        )
        logger.info("jitsi token", extra={"user": user_id, "room": room_id, "moderator": moderator})
        return JSONResponse(
            {
                "token": tokens.sign(claims, secrets.jitsi),
                "room": claims["room"],
                "domain": jitsi.domain,
                "moderator": moderator,
            }
        )

    def livekit_answer(user_id: str, identity: str, room: str, facts: RoomFacts) -> Response:
        livekit = conference.livekit
        assert livekit is not None
        assert secrets.livekit is not None
        server = user_id.partition(":")[2]
        person = tokens.Person(user_id, facts.displayname or user_id, facts.avatar_url)
        claims = tokens.livekit_claims(
            identity,
            person,
            room,
            api_key=livekit.key,
            full_access=server in matrix.own_servers,
            now=int(time.time()),
            ttl_seconds=LIVEKIT_TTL_SECONDS,
        )
        logger.info("livekit token", extra={"user": user_id, "room_id": facts.room_id})
        return JSONResponse({"url": livekit.url, "jwt": tokens.sign(claims, secrets.livekit)})

    async def livekit_body(request: Request) -> dict[str, Any]:
        """The body of a request for a LiveKit token, once LiveKit is known to be set up."""
        if conference.livekit is None or secrets.livekit is None:
            raise Refused("LiveKit is not configured here", status=404, errcode="M_NOT_FOUND")
        return await _json_body(request)

    @endpoint("get_token", bearer=False, cors=True, lk_errors=True)
    async def get_token(request: Request) -> Response:
        data = await livekit_body(request)
        room_id, slot_id = _field(data, "room_id"), _field(data, "slot_id")
        token, server = _openid_token(data)
        member_id = _field(data, "member", "id")
        claimed_user = _field(data, "member", "claimed_user_id")
        device = _field(data, "member", "claimed_device_id")
        user_id, facts = await member(server, token, room_id, _expires_in(data))
        if claimed_user != user_id:
            raise Refused("The request could not be authorised.")
        identity = tokens.livekit_identity(user_id, device, member_id)
        return livekit_answer(user_id, identity, tokens.livekit_room_alias(room_id, slot_id), facts)

    @endpoint("sfu_get", bearer=False, cors=True, lk_errors=True)
    async def sfu_get(request: Request) -> Response:
        data = await livekit_body(request)
        room_id, device = _field(data, "room"), _field(data, "device_id")
        token, server = _openid_token(data)
        user_id, facts = await member(server, token, room_id, _expires_in(data))
        room = tokens.livekit_room_alias(room_id, tokens.LEGACY_SLOT)
        return livekit_answer(user_id, f"{user_id}:{device}", room, facts)

    async def jitsi_well_known(_request: Request) -> Response:
        if conference.jitsi is None:
            return JSONResponse({"errcode": "M_NOT_FOUND", "error": "no Jitsi here"}, 404)
        return JSONResponse(
            {"auth": "openidtoken-jwt"}, headers={"Access-Control-Allow-Origin": "*"}
        )

    async def health(_request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def prometheus(request: Request) -> Response:
        if not (_is_local(request) or bearer_ok(request)):
            return JSONResponse({}, status_code=403)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    client_methods = ["POST", "OPTIONS"]
    return Starlette(
        lifespan=lifespan,
        routes=[
            Route("/verify/user", verify_user, methods=["POST"]),
            Route("/verify/user_in_room", verify_user_in_room, methods=["POST"]),
            Route("/jitsi/token", jitsi_token, methods=client_methods),
            Route("/get_token", get_token, methods=client_methods),
            Route("/sfu/get", sfu_get, methods=client_methods),
            Route("/.well-known/element/jitsi", jitsi_well_known),
            Route("/health", health),
            Route("/metrics", prometheus),
        ],
    )
