"""A small typed async client for the parts of Synapse's client and admin APIs we use."""

from __future__ import annotations

import hashlib
import hmac
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from homeport.errors import HomeportError


class SynapseApiError(HomeportError):
    """Synapse answered with an error; `errcode` is Matrix's machine-readable code."""

    def __init__(self, status: int, errcode: str, message: str) -> None:
        self.status = status
        self.errcode = errcode
        super().__init__(f"{errcode or status}: {message}")


@dataclass(frozen=True)
class RegisteredUser:
    user_id: str
    access_token: str
    device_id: str


class SynapseClient:
    """One homeserver's HTTP API, over TLS verified against the deployment's CA."""

    def __init__(
        self,
        base_url: str,
        ssl_context: ssl.SSLContext,
        access_token: str | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, verify=ssl_context, timeout=timeout)
        self._token = access_token
        self._owns_http = True

    def as_user(self, access_token: str) -> SynapseClient:
        """The same homeserver and connection pool, acting with another user's token.

        Closing the view leaves the pool open: the client it came from owns it.
        """
        view = SynapseClient.__new__(SynapseClient)
        view._http, view._token, view._owns_http = self._http, access_token, False
        return view

    async def __aenter__(self) -> SynapseClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def with_token(self, access_token: str) -> None:
        self._token = access_token

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any client or admin API call; an error answer raises SynapseApiError."""
        return await self._request(method, path, **kwargs)

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        if self._token:
            kwargs["headers"] = {
                "Authorization": f"Bearer {self._token}",
                **kwargs.get("headers", {}),
            }
        response = await self._http.request(method, path, **kwargs)
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.is_error:
            if not isinstance(body, dict):
                body = {}
            raise SynapseApiError(
                response.status_code,
                str(body.get("errcode", "")),
                str(body.get("error", response.reason_phrase)),
            )
        return body

    async def federation_version(self) -> str:
        """The Synapse version, from the federation port: this is also the readiness probe."""
        body = await self._request("GET", "/_matrix/federation/v1/version")
        return str(body["server"]["version"])

    async def register_with_shared_secret(
        self, shared_secret: str, localpart: str, password: str, admin: bool
    ) -> RegisteredUser:
        """Register via the admin API's shared-secret endpoint (as register_new_matrix_user)."""
        nonce = (await self._request("GET", "/_synapse/admin/v1/register"))["nonce"]
        mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
        for part in (nonce, localpart, password):
            mac.update(part.encode() + b"\x00")
        mac.update(b"admin" if admin else b"notadmin")
        body = await self._request(
            "POST",
            "/_synapse/admin/v1/register",
            json={
                "nonce": nonce,
                "username": localpart,
                "password": password,
                "admin": admin,
                "mac": mac.hexdigest(),
            },
        )
        return RegisteredUser(body["user_id"], body["access_token"], body["device_id"])

    async def login(
        self, user: str, password: str, device_name: str = "homeport"
    ) -> RegisteredUser:
        """Password login; the new device carries `device_name`. Does not change our token."""
        body = await self._request(
            "POST",
            "/_matrix/client/v3/login",
            json={
                "type": "m.login.password",
                "identifier": {"type": "m.id.user", "user": user},
                "password": password,
                "initial_device_display_name": device_name,
            },
        )
        return RegisteredUser(body["user_id"], body["access_token"], body["device_id"])

    async def logout(self) -> None:
        await self._request("POST", "/_matrix/client/v3/logout", json={})

    async def is_admin(self, user_id: str) -> bool:
        """Whether `user_id` is a server admin, asked as that user (403 means no)."""
        try:
            body = await self._request("GET", f"/_synapse/admin/v1/users/{quote(user_id)}/admin")
        except SynapseApiError as error:
            if error.status == 403:
                return False
            raise
        return bool(body.get("admin"))

    async def put_user(self, user_id: str, password: str, displayname: str) -> None:
        """Create (or update) a user through the admin API."""
        await self._request(
            "PUT",
            f"/_synapse/admin/v2/users/{quote(user_id)}",
            json={"password": password, "displayname": displayname, "admin": False},
        )

    async def login_as(self, user_id: str) -> str:
        """An access token for `user_id`, minted by an admin (no device, no rate limit)."""
        body = await self._request(
            "POST", f"/_synapse/admin/v1/users/{quote(user_id)}/login", json={}
        )
        return str(body["access_token"])

    async def deactivate(self, user_id: str) -> None:
        """Deactivate and erase a user (they leave every room)."""
        await self._request(
            "POST", f"/_synapse/admin/v1/deactivate/{quote(user_id)}", json={"erase": True}
        )

    async def delete_room(self, room_id: str) -> None:
        """Remove local users from a room and purge it, in the background (admin API v2)."""
        await self._request(
            "DELETE", f"/_synapse/admin/v2/rooms/{quote(room_id)}", json={"purge": True}
        )

    async def whoami(self) -> str:
        return str((await self._request("GET", "/_matrix/client/v3/account/whoami"))["user_id"])

    async def override_ratelimit(self, user_id: str) -> None:
        """Exempt a user from rate limits (Homeport's own service account)."""
        await self._request(
            "POST",
            f"/_synapse/admin/v1/users/{quote(user_id)}/override_ratelimit",
            json={"messages_per_second": 0, "burst_count": 0},
        )

    async def reset_connection(self, destination: str) -> bool:
        """Clear the backoff toward `destination`; False when Synapse had none to clear."""
        try:
            await self._request(
                "POST",
                f"/_synapse/admin/v1/federation/destinations/{quote(destination)}/reset_connection",
                json={},
            )
        except SynapseApiError as error:
            if error.status in (400, 404):
                return False
            raise
        return True

    async def federation_destinations(
        self,
        start: int = 0,
        limit: int = 100,
        order_by: str = "destination",
        direction: str = "f",
        search: str | None = None,
    ) -> dict[str, Any]:
        params: dict[str, str | int] = {
            "from": start,
            "limit": limit,
            "order_by": order_by,
            "dir": direction,
        }
        if search:
            params["destination"] = search
        body: dict[str, Any] = await self._request(
            "GET", "/_synapse/admin/v1/federation/destinations", params=params
        )
        return body

    async def all_federation_destinations(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        start = 0
        while True:
            page = await self.federation_destinations(start=start, limit=500)
            rows += page["destinations"]
            if "next_token" not in page:
                return rows
            start = int(page["next_token"])
