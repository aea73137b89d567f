"""The conference service's secrets: generated once in the data folder, mode 0600.

The bearer token Prosody presents is always Homeport's. Jitsi's `app_secret`
and LiveKit's API secret are the files `homeport.yaml` names, or, when it
names none, files Homeport generates for the administrator to give Prosody
and LiveKit.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from homeport.config.conference import Conference
from homeport.files import ensure_dir, read_or_create_private, write_atomic
from homeport.layout import DeploymentLayout

# Element asks the Jitsi domain how to authenticate; this answer makes it send
# an OpenID token for the conference's room.
JITSI_WELL_KNOWN = b'{"auth": "openidtoken-jwt"}\n'


def jitsi_secret_file(conference: Conference, layout: DeploymentLayout) -> Path | None:
    if conference.jitsi is None:
        return None
    return conference.jitsi.app_secret_file or layout.conference_jitsi_secret


def livekit_secret_file(conference: Conference, layout: DeploymentLayout) -> Path | None:
    if conference.livekit is None:
        return None
    return conference.livekit.secret_file or layout.conference_livekit_secret


def ensure_secrets(conference: Conference, layout: DeploymentLayout) -> None:
    """Generate what is missing; a file that exists is never replaced."""
    ensure_dir(layout.conference_dir)
    read_or_create_private(layout.conference_auth_token, secrets.token_urlsafe(32).encode())
    generated = (
        (conference.jitsi and not conference.jitsi.app_secret_file, layout.conference_jitsi_secret),
        (
            conference.livekit and not conference.livekit.secret_file,
            layout.conference_livekit_secret,
        ),
    )
    for wanted, path in generated:
        if wanted:
            read_or_create_private(path, secrets.token_urlsafe(48).encode())
    if conference.jitsi is not None:
        ensure_dir(layout.conference_jitsi_well_known.parent)
        write_atomic(layout.conference_jitsi_well_known, JITSI_WELL_KNOWN)


@dataclass(frozen=True)
class Secrets:
    auth_token: str
    jitsi: bytes | None
    livekit: bytes | None


def read_secrets(conference: Conference, layout: DeploymentLayout) -> Secrets:
    def read(path: Path | None) -> bytes | None:
        return None if path is None else path.read_bytes().strip()

    return Secrets(
        auth_token=layout.conference_auth_token.read_text().strip(),
        jitsi=read(jitsi_secret_file(conference, layout)),
        livekit=read(livekit_secret_file(conference, layout)),
    )
