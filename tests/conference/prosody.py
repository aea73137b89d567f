"""What Prosody's mod_auth_matrix_user_verification does with a Jitsi room name."""

from __future__ import annotations

import base64


def room_id_of(jitsi_room: str) -> str:
    """basexx.from_base32: upper-cased (Jitsi lower-cases room names), padding optional."""
    padded = jitsi_room.upper() + "=" * (-len(jitsi_room) % 8)
    return base64.b32decode(padded).decode()
