"""Fields that mean the same in several sections, each said once.

A port, where a listener binds, the host in a website's URL: the sections
take them from here, so that a range or a default cannot drift between them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

# A TCP port: the homeserver's, a service's, the proxy's, the first of the workers'.
Port = Annotated[int, Field(ge=1, le=65535)]


def listen_address(listener: str) -> Any:
    """`address:` of a listener Homeport runs: loopback unless the file says otherwise."""
    return Field(default="127.0.0.1", description=f"IP address the {listener} binds to.")


def url_host(service: str, *, own_tls: bool = False) -> Any:
    """`host:` of a website Homeport serves: the name in its URL, which the local CA
    certifies (unless the section can take a certificate of your own)."""
    unless = " unless `tls` names your own" if own_tls else ""
    return Field(
        default="localhost",
        description=f"Host name in the {service}'s URL; the local CA issues its certificate"
        f"{unless}.",
    )
