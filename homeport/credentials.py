"""Secrets and signing keys of each homeserver, generated once and kept (mode 0600).

Synapse reads them through its `*_path` settings and runs with
`--no-secrets-in-config`, so no rendered file ever contains a secret.
"""

from __future__ import annotations

import secrets

from homeport.files import ensure_dir, read_or_create_private
from homeport.layout import HomeserverLayout


def _signing_key_line() -> bytes:
    version = "a_" + secrets.token_hex(2)
    from signedjson.key import encode_signing_key_base64, generate_signing_key

    key = generate_signing_key(version)
    return f"ed25519 {version} {encode_signing_key_base64(key)}\n".encode()


def ensure_secrets(layout: HomeserverLayout) -> None:
    """Create whatever secret is missing; never touch one that exists."""
    ensure_dir(layout.keys_dir)
    read_or_create_private(layout.signing_key, _signing_key_line())
    for path in (layout.registration_shared_secret, layout.macaroon_secret_key, layout.form_secret):
        read_or_create_private(path, secrets.token_urlsafe(48).encode())


def registration_shared_secret(layout: HomeserverLayout) -> str:
    return layout.registration_shared_secret.read_text().strip()
