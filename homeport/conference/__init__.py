"""The conference service: vouches for every homeserver's users to Jitsi and Element Call."""
