"""Directory login inside Synapse: people log in with their directory password.

Loaded into the homeserver group sync serves (`group_sync.login`), in place of
Synapse's LDAP provider (matrix-synapse-ldap3), which could not be made to
keep these promises:

- **Homeport's own accounts are never the directory's** (`homeport.identities`):
  a person named `homeport`, `audit` or `_homeport_*`, in any letter case, is
  not looked up at all; those accounts log in with their own passwords only.
- **A person binds only to an account the directory created** (recorded by
  Synapse as the account's external ID for `homeport-directory`, by this
  module or by group sync) or one an administrator linked
  (`homeport groupsync link`). Any other existing account of that name is
  refused, with a warning in Synapse's log naming the remedy.
- **A directory outage costs a login seconds, never more**: each request waits
  at most `LOGIN_TIMEOUT`, servers are tried in `uri` order, and after a failure
  logins skip the directory for `RETRY_AFTER` (local accounts, server admins
  among them, log in at once; directory people are refused). The state shows
  at `GET /_homeport/v1/directory_login` (server admins) for `homeport status`,
  and as the metric `homeport_directory_login_up`.
- **Login and group sync agree on who a person is**: the directory is read by
  group sync's own reader (`homeport.directory.ldap_login`), with its TLS,
  failover, Active Directory filters and enabled accounts only. On Active
  Directory, `dee`, `dee@corp.example` (user principal name) and `CORP\\dee`
  all log in as `@dee:<server>` (`sAMAccountName`).

The check returns None whenever it does not vouch for the person, so Synapse
goes on to its own password database: that is how local accounts log in.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge

from homeport.config.types import duration_ms
from homeport.directory.accounts import skip_reason
from homeport.directory.ldap_connection import DirectoryUnavailable
from homeport.directory.ldap_login import (
    LoginName,
    answering_first,
    check_password,
    login_name,
)
from homeport.identities import DIRECTORY_AUTH_PROVIDER, is_owned
from homeport.synapse_module.config import DirectoryLoginConfig
from homeport.synapse_module.contract import DIRECTORY_LOGIN_PATH

logger = logging.getLogger(__name__)

LOGIN_TIMEOUT_SECONDS = 3.0  # per request to one directory server
RETRY_AFTER_SECONDS = 30.0  # after a failure, logins skip the directory this long

LOGINS = Counter(
    "homeport_directory_logins",
    "Password logins the directory was asked about, by result.",
    ["result"],
)
UP = Gauge(
    "homeport_directory_login_up",
    "1 when the directory answered the last login that asked it, 0 when it did not.",
)


class DirectoryState:
    """What the last logins learnt of the directory; an outage is remembered a while."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self.ok_ts: float | None = None
        self.failed_ts: float | None = None
        self.down_since: float | None = None
        self.error = ""

    def skipping(self) -> bool:
        """Whether logins skip the directory now (it failed a moment ago)."""
        return self.failed_ts is not None and self._clock() - self.failed_ts < RETRY_AFTER_SECONDS

    def answered(self) -> None:
        self.ok_ts, self.failed_ts, self.down_since, self.error = self._clock(), None, None, ""
        UP.set(1)

    def failed(self, error: str) -> None:
        now = self._clock()
        self.failed_ts, self.error = now, error
        self.down_since = self.down_since or now
        UP.set(0)

    def as_json(self) -> dict[str, Any]:
        state = "unknown" if self.ok_ts is None and self.down_since is None else "ok"
        if self.down_since is not None:
            state = "unreachable"
        return {
            "state": state,
            "last_ok_ts": _ms(self.ok_ts),
            "down_since_ts": _ms(self.down_since),
            "error": self.error,
            "retry_after_s": RETRY_AFTER_SECONDS,
        }


def _ms(ts: float | None) -> int | None:
    return None if ts is None else int(ts * 1000)


class DirectoryLogin:
    """`modules:` entry `homeport.synapse_module.directory_login.DirectoryLogin`."""

    def __init__(self, config: DirectoryLoginConfig, api: Any) -> None:
        self._api = api
        settings = config.ldap
        wait_ms = min(duration_ms(settings.timeout), int(LOGIN_TIMEOUT_SECONDS * 1000))
        self._settings = settings.model_copy(update={"timeout": f"{wait_ms}ms"})
        self._bots = config.bot_localparts
        self.state = DirectoryState()
        api.register_password_auth_provider_callbacks(
            auth_checkers={("m.login.password", ("password",)): self.check_auth}
        )
        api.register_web_resource(DIRECTORY_LOGIN_PATH, _state_resource(api, self.state))

    @staticmethod
    def parse_config(config: dict[str, Any]) -> DirectoryLoginConfig:
        """A bad, missing or unknown setting stops Synapse at start, not at the first login."""
        return DirectoryLoginConfig.model_validate(config)

    async def check_auth(
        self, username: str, _login_type: str, login_dict: dict[str, Any]
    ) -> tuple[str, None] | None:
        name = login_name(self._settings, username, self._api.server_name)
        if name is None or self._owned(name.value):
            return None
        if self.state.skipping():
            LOGINS.labels("skipped").inc()
            return None
        password = login_dict.get("password")
        if not isinstance(password, str):
            return None
        try:
            checked = await self._api.defer_to_thread(
                check_password, self._settings, name, password
            )
        except DirectoryUnavailable as error:
            LOGINS.labels("unavailable").inc()
            self.state.failed(str(error))
            logger.warning(
                "homeport: the directory did not answer a login; local accounts still log "
                "in, directory people cannot for %ds: %s",
                RETRY_AFTER_SECONDS,
                error,
            )
            return None
        self.state.answered()
        self._settings = answering_first(self._settings, checked.uri)
        person = checked.person
        if person is None:
            LOGINS.labels("refused").inc()
            return None
        skipped = skip_reason(person, self._bots)  # the rule group sync applies
        if skipped is not None:
            LOGINS.labels("refused").inc()
            logger.warning("homeport: refused a directory login: %s", skipped)
            return None
        user_id = await self._bound_account(person.localpart, person.displayname, name)
        LOGINS.labels("ok" if user_id else "conflict").inc()
        return None if user_id is None else (user_id, None)

    def _owned(self, name: str) -> bool:
        return is_owned(name, self._bots)

    async def _bound_account(
        self, localpart: str, displayname: str | None, name: LoginName
    ) -> str | None:
        """The account this person may log in to: theirs, or a new one; None on a conflict."""
        user_id = f"@{localpart}:{self._api.server_name}"
        store = self._api._store
        bound = await store.get_user_by_external_id(DIRECTORY_AUTH_PROVIDER, localpart)
        if bound is not None:
            return str(bound)
        if await self._api.check_user_exists(user_id) is None:
            try:
                await self._api.register_user(localpart, displayname)
            except Exception as error:  # a concurrent login or group sync created it
                if await self._api.check_user_exists(user_id) is None:
                    raise
                logger.info("homeport: %s was created meanwhile: %s", user_id, error)
            else:
                await self._api.record_user_external_id(DIRECTORY_AUTH_PROVIDER, localpart, user_id)
                logger.info("homeport: created %s for a directory login", user_id)
                return user_id
            bound = await store.get_user_by_external_id(DIRECTORY_AUTH_PROVIDER, localpart)
            if bound is not None:
                return str(bound)
        logger.warning(
            "homeport: refused directory login as %s (%s=%s): the account exists but the "
            "directory did not create it; if they are the same person, link them with "
            "`homeport groupsync link %s`",
            user_id,
            name.attribute,
            name.value,
            user_id,
        )
        return None


def _state_resource(api: Any, state: DirectoryState) -> Any:
    from synapse.api.errors import SynapseError
    from synapse.module_api import DirectServeJsonResource

    class DirectoryLoginState(DirectServeJsonResource):
        """Whether directory login works now: for `homeport status` and the website."""

        async def _async_render_GET(self, request: Any) -> tuple[int, dict[str, Any]]:
            requester = await api.get_user_by_req(request)
            if not await api.is_user_admin(requester.user.to_string()):
                raise SynapseError(403, "You are not a server admin", "M_FORBIDDEN")
            return 200, state.as_json()

    return DirectoryLoginState()
