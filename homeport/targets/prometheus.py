"""`homeport render --target prometheus`: the alerting rules and a scrape job. Pure.

`homeport-rules.yml` goes under Prometheus' `rule_files:`; the scrape job in
`homeport-scrape.yml` under its `scrape_configs:` (Prometheus on the machine
that runs `homeport up`: the alerts service listens on loopback). In a
cluster, `--target kubernetes` renders the same rules as a `PrometheusRule`.
"""

from __future__ import annotations

import yaml

from homeport.alerts.rules import rule_groups, scrape_config
from homeport.config.alerts import Alerts

HEADER = (
    "# Rendered by Homeport from homeport.yaml: `homeport render --target prometheus`.\n"
    "# Check with `promtool check rules homeport-rules.yml`; see docs/alerts.md.\n"
)


def render_prometheus(alerts: Alerts) -> dict[str, str]:
    rules = yaml.safe_dump({"groups": rule_groups(alerts)}, sort_keys=False, width=100)
    scrape = yaml.safe_dump({"scrape_configs": [scrape_config(alerts)]}, sort_keys=False)
    return {"homeport-rules.yml": HEADER + rules, "homeport-scrape.yml": HEADER + scrape}
