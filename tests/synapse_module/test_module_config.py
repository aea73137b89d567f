"""The Homeport module's config: what the render writes is exactly what the module parses,
and Synapse's own module loader refuses anything else at start."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from synapse.config import ConfigError
from synapse.util.module_loader import load_module

from homeport.capabilities import homeserver_config
from homeport.config.loader import load_deployment_text
from homeport.config.starter import starter_text
from homeport.layout import DeploymentLayout
from homeport.synapse_module.config import HomeportModuleConfig
from homeport.synapse_module.contract import HOMEPORT_MODULE
from tests.homeserver.test_render import SOURCE


def starter_module(name: str) -> dict[str, Any]:
    """The Homeport module's entry as the starter's homeserver.yaml has it."""
    deployment = load_deployment_text(starter_text(), SOURCE)[0]
    config = homeserver_config(deployment, name, DeploymentLayout(deployment.data_dir))
    entry: dict[str, Any] = config["modules"][0]
    assert entry["module"] == HOMEPORT_MODULE
    return entry


@pytest.mark.parametrize("name", ["internal", "external"])
def test_synapse_loads_what_the_render_writes(name: str) -> None:
    entry = starter_module(name)
    _module, parsed = load_module(copy.deepcopy(entry), ("modules", "<item 0>"))
    assert isinstance(parsed, HomeportModuleConfig)
    assert parsed.model_dump(mode="json", exclude_none=True) == entry["config"]


def _without(config: dict[str, Any], *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    inner = changed
    for key in path[:-1]:
        inner = inner[key]
    del inner[path[-1]]
    return changed


def _with(config: dict[str, Any], value: Any, *path: str) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    inner = changed
    for key in path[:-1]:
        inner = inner[key]
    inner[path[-1]] = value
    return changed


CONFIG = starter_module("internal")["config"]  # the starter's internal has an audit bot


@pytest.mark.parametrize(
    ("config", "named"),
    [
        (_without(CONFIG, "rooms_federation"), "rooms_federation"),
        (_without(CONFIG, "audit", "auto_join"), "auto_join"),
        (_with(CONFIG, "local_room", "audit", "auto_join"), "auto_join"),  # a typo
        (_with(CONFIG, "yes", "audit", "include_direct_messages"), "include_direct_messages"),
        (_with(CONFIG, True, "audit", "autojoin"), "autojoin"),  # a renamed key
        (_with(CONFIG, "sometimes", "rooms_federation"), "rooms_federation"),
    ],
    ids=["missing", "missing-nested", "typo", "mistyped", "unknown-key", "bad-value"],
)
def test_synapse_refuses_to_start_on_any_other_module_config(
    config: dict[str, Any], named: str
) -> None:
    entry = {"module": "homeport.synapse_module.module.HomeportModule", "config": config}
    with pytest.raises(ConfigError) as refused:
        load_module(entry, ("modules", "<item 0>"))
    assert named in str(refused.value.__cause__ or refused.value)
