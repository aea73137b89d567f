"""Fields several sections share: one range, one default, one wording."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from homeport.config.fields import Port, listen_address, url_host
from homeport.config.loader import load_deployment_text
from homeport.config.paths import named_files
from homeport.config.types import IpAddress


class Service(BaseModel):
    address: IpAddress = listen_address("service's HTTPS listener")
    port: Port
    host: str = url_host("service", own_tls=True)
    other: str = url_host("website")


def test_a_port_is_a_tcp_port() -> None:
    assert Service(port=1).port == 1
    assert Service(port=65535).port == 65535
    for wrong in (0, 65536):
        with pytest.raises(ValidationError, match="than or equal to"):
            Service(port=wrong)


def test_a_listener_binds_loopback_unless_told_and_says_so() -> None:
    fields = Service.model_fields
    assert Service(port=8000).address == "127.0.0.1"
    assert fields["address"].description == "IP address the service's HTTPS listener binds to."
    assert Service(port=8000).host == "localhost"
    assert fields["host"].description == (
        "Host name in the service's URL; the local CA issues its certificate unless `tls` "
        "names your own."
    )
    assert fields["other"].description == (
        "Host name in the website's URL; the local CA issues its certificate."
    )


def test_the_webhooks_token_file_is_read_relative_to_the_file(tmp_path: Path) -> None:
    """Like every file homeport.yaml names: relative to the file, not to where one stands."""
    text = (
        "homeservers:\n  main: {server_name: 'localhost:8448', port: 8448}\n"
        "alerts: {port: 8449, webhook: {url: 'https://hooks.example.org/x', "
        "token_file: secrets/hook.token}}\n"
    )
    model, _ = load_deployment_text(text, tmp_path / "homeport.yaml")
    assert model.alerts is not None
    assert model.alerts.webhook is not None
    assert model.alerts.webhook.token_file == tmp_path / "secrets" / "hook.token"
    assert named_files(model)["alerts-webhook-token"] == tmp_path / "secrets" / "hook.token"
