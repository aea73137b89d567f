"""The Policy tab: what the policy means, in the words of verify's own expectations."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from homeport.admin.site import current_login, site_of
from homeport.policy.effective import effective_whitelist
from homeport.policy.lint import lint
from homeport.policy.statements import policy_view


async def policy(request: Request) -> Response:
    site = site_of(request)
    name, _login = current_login(request)
    deployment = site.deployment
    own = deployment.homeservers[name].server_name
    whitelist = effective_whitelist(deployment, name)
    return site.templates.render(
        request,
        "policy.html",
        perspectives=policy_view(deployment, name),
        whitelist=None if whitelist is None else [s for s in whitelist if s != own],
        rooms_federation=deployment.homeservers[name].policy.rooms.federation,
        findings=[f for f in lint(deployment) if f.homeserver == name],
    )
