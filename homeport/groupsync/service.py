"""Group sync as `up` sees it: its restart policy (its /health is `loopback_health`)."""

from __future__ import annotations

from homeport.supervision.service import RestartPolicy

# A run cut short is finished by the next one (the plan is made again from
# what Synapse holds), so a crash comes back soon, then backs off.
RESTART = RestartPolicy(backoff=(1.0, 2.0, 5.0, 10.0, 30.0, 60.0))
