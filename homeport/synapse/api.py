"""A small typed async client for Synapse's HTTP APIs: transport, errors, the client API.

Admin API calls live in `homeport.synapse.admin_api`, on top of this client.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from homeport.errors import HomeportError


class SynapseApiError(HomeportError):
    """Synapse answered with an error; `errcode` is Matrix's machine-readable code."""

    def __init__(self, status: int, errcode: str, message: str, retry_after_ms: int = 0) -> None:
        self.status = status
        self.errcode = errcode
        self.message = message
        self.retry_after_ms = retry_after_ms  # how long M_LIMIT_EXCEEDED asks us to wait
        super().__init__(f"{errcode or status}: {message}")


@dataclass(frozen=True)
class RegisteredUser:
    user_id: str
    access_token: str
    device_id: str


def login_body(kind: str, user: str, device_name: str, **proof: str) -> dict[str, Any]:
    """The body of `POST /_matrix/client/v3/login` as `user` (a localpart or a user ID):
    `kind` of login and the `proof` it takes; the new device is named `device_name`."""
    return {
        "type": kind,
        "identifier": {"type": "m.id.user", "user": user},
        **proof,
        "initial_device_display_name": device_name,
    }


def tls_named_http(
    base_url: str, ssl_context: ssl.SSLContext, tls_name: str | None = None, **kwargs: Any
) -> httpx.AsyncClient:
    """An httpx client whose TLS checks (and names in SNI) `tls_name`, not the URL's host.

    Homeport's services reach Synapse's listener by its address (see
    `Homeserver.local_url`); the certificate names the server's host.
    """

    async def name_the_server(request: httpx.Request) -> None:
        request.extensions["sni_hostname"] = tls_name

    hooks = {"request": [name_the_server]} if tls_name else {}
    return httpx.AsyncClient(base_url=base_url, verify=ssl_context, event_hooks=hooks, **kwargs)


class SynapseClient:
    """One homeserver's HTTP API, over TLS verified against the deployment's CA."""

    def __init__(
        self,
        base_url: str,
        ssl_context: ssl.SSLContext,
        access_token: str | None = None,
        timeout: float = 30.0,
        tls_name: str | None = None,
    ) -> None:
        self._http = tls_named_http(base_url, ssl_context, tls_name, timeout=timeout)
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
            retry = body.get("retry_after_ms")
            raise SynapseApiError(
                response.status_code,
                str(body.get("errcode", "")),
                str(body.get("error", response.reason_phrase)),
                retry if isinstance(retry, int) else 0,
            )
        return body

    async def federation_version(self) -> str:
        """The Synapse version, from the federation port: this is also the readiness probe."""
        body = await self.request("GET", "/_matrix/federation/v1/version")
        return str(body["server"]["version"])

    async def login(
        self, user: str, password: str, device_name: str = "homeport"
    ) -> RegisteredUser:
        """Password login; the new device carries `device_name`. Does not change our token."""
        body = await self.request(
            "POST",
            "/_matrix/client/v3/login",
            json=login_body("m.login.password", user, device_name, password=password),
        )
        return RegisteredUser(body["user_id"], body["access_token"], body["device_id"])

    async def logout(self) -> None:
        await self.request("POST", "/_matrix/client/v3/logout", json={})

    async def whoami(self) -> str:
        return str((await self.request("GET", "/_matrix/client/v3/account/whoami"))["user_id"])
