"""The accounts Homeport owns, in any letter case, and the names people may have."""

from __future__ import annotations

import pytest

from homeport.identities import is_owned, localpart_of
from homeport.synapse.users import check_localpart


@pytest.mark.parametrize(
    ("name", "owned"),
    [
        ("homeport", True),
        ("HOMEPORT", True),
        ("@Homeport:example.org", True),
        ("homeport-1a2b3c", True),  # a replaced service account
        ("homeport-probe-abc-viewer", True),  # verify's probes
        ("_homeport_audit", True),  # an audit bot's sender
        ("audit", True),  # the audit bot, by the name the deployment gives it
        ("AUDIT", True),
        ("homeportal", False),
        ("alice", False),
        ("auditor", False),
        ("@audit:elsewhere.org", True),  # the localpart decides; the server is the caller's
    ],
)
def test_homeports_own_accounts(name: str, owned: bool) -> None:
    assert is_owned(name, ["audit"]) is owned


def test_a_renamed_bot_frees_the_default_name_and_owns_its_own() -> None:
    assert not is_owned("audit", ["recorder"])
    assert is_owned("Recorder", ["recorder"])


def test_localparts_are_read_from_ids_in_lower_case() -> None:
    assert localpart_of("@Alice:example.org") == "alice"
    assert localpart_of(" bob ") == "bob"


def test_user_create_refuses_homeports_names_with_the_reason() -> None:
    assert check_localpart("alice", ["audit"]) == "alice"
    for name in ("homeport", "audit", "_homeport_audit", "homeport-probe-x"):
        with pytest.raises(ValueError, match="an account Homeport owns"):
            check_localpart(name, ["audit"])
