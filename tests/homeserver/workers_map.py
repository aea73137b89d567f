"""Run by the routing test in a process of its own: the endpoints the installed Synapse
registers on its main process, on a generic worker, and on a worker with the media
repository, as Synapse's own `generate_workers_map` script enumerates them. Prints JSON.

Usage: python tests/homeserver/workers_map.py HOMESERVER_YAML
"""

from __future__ import annotations

import json
import logging
import sys

import yaml
from synapse._scripts import generate_workers_map as enumerate_endpoints
from synapse.config.homeserver import HomeServerConfig
from synapse.rest import admin


def main() -> None:
    logging.disable(logging.CRITICAL)
    with open(sys.argv[1]) as handle:
        settings = yaml.safe_load(handle)
    settings["database"] = {"name": "sqlite3", "args": {"database": ":memory:"}}
    config = HomeServerConfig()
    config.parse_config_dict(settings, "", "")
    main_process = enumerate_endpoints.get_registered_paths_for_default(None, config)
    worker = enumerate_endpoints.get_registered_paths_for_default(
        "synapse.app.generic_worker", config
    )
    # A worker with the media listener also serves the media admin API.
    media_hs = enumerate_endpoints.MockHomeserver(config, "synapse.app.generic_worker")
    media_hs.setup()
    media_admin = enumerate_endpoints.EnumerationResource(is_worker=True)
    admin.register_servlets_for_media_repo(media_hs, media_admin)  # type: ignore[arg-type]
    json.dump(
        {
            "main": sorted(main_process),
            "worker": sorted(worker),
            "media_admin": sorted(media_admin.registrations),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
