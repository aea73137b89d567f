"""The files homeport.yaml names besides the data folder, in one place.

The loader makes them absolute, a backup takes them along, the cluster
rendering moves them into its pods: each walks the same list, so a new file
setting cannot be forgotten by one of them. Each file has a label, unique in
the deployment, that says what it is (`ldap-bind-password`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from homeport.config.deployment import Deployment
from homeport.config.homeserver import TlsFiles

Move = Callable[[str, Path], Path]


def _tls(files: TlsFiles | None, label: str, move: Move) -> TlsFiles | None:
    if files is None:
        return None
    return TlsFiles(
        certificate=move(f"{label}-tls.crt", files.certificate),
        key=move(f"{label}-tls.key", files.key),
    )


def _optional(path: Path | None, label: str, move: Move) -> Path | None:
    return None if path is None else move(label, path)


def map_named_files(model: Deployment, move: Move) -> Deployment:
    """The model with each named file replaced by `move(label, path)`."""
    homeservers = {
        name: hs.model_copy(update={"tls": _tls(hs.tls, name, move)})
        for name, hs in model.homeservers.items()
    }
    sync = model.group_sync
    if sync is not None:
        ldap = sync.ldap
        ldap = ldap.model_copy(
            update={
                "ca_file": _optional(ldap.ca_file, "ldap-ca.pem", move),
                "bind_password_file": _optional(
                    ldap.bind_password_file, "ldap-bind-password", move
                ),
            }
        )
        sync = sync.model_copy(update={"ldap": ldap})
    conference = model.conference
    if conference is not None:
        jitsi, livekit = conference.jitsi, conference.livekit
        conference = conference.model_copy(
            update={
                "tls": _tls(conference.tls, "conference", move),
                "jitsi": None
                if jitsi is None
                else jitsi.model_copy(
                    update={
                        "app_secret_file": _optional(
                            jitsi.app_secret_file, "jitsi-app-secret", move
                        )
                    }
                ),
                "livekit": None
                if livekit is None
                else livekit.model_copy(
                    update={"secret_file": _optional(livekit.secret_file, "livekit-secret", move)}
                ),
            }
        )
    alerts = model.alerts
    if alerts is not None and alerts.webhook is not None:
        token = _optional(alerts.webhook.token_file, "alerts-webhook-token", move)
        alerts = alerts.model_copy(
            update={"webhook": alerts.webhook.model_copy(update={"token_file": token})}
        )
    return model.model_copy(
        update={
            "trusted_ca_files": [
                move(f"trusted-{i}.pem", p) for i, p in enumerate(model.trusted_ca_files)
            ],
            "homeservers": homeservers,
            "group_sync": sync,
            "conference": conference,
            "alerts": alerts,
        }
    )


def named_files(model: Deployment) -> dict[str, Path]:
    """Label -> path of every file the model names besides the data folder."""
    found: dict[str, Path] = {}

    def note(label: str, path: Path) -> Path:
        found[label] = path
        return path

    map_named_files(model, note)
    return found
