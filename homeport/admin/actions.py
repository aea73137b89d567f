"""What administrators did through the website, kept in Homeport's store.

Each state-changing action is recorded with who, when, on which homeserver,
to what, and what came of it; the destination page shows the latest. The
table is bounded: beyond KEEP_ACTIONS the oldest rows go.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, delete, desc, insert, select

from homeport.store.schema import admin_actions

KEEP_ACTIONS = 10_000


@dataclass(frozen=True)
class Action:
    ts: int  # ms since the epoch
    homeserver: str
    user_id: str
    action: str
    target: str
    outcome: str


def record_action(engine: Engine, action: Action) -> None:
    with engine.begin() as connection:
        connection.execute(insert(admin_actions).values(**vars(action)))
        cutoff = connection.execute(
            select(admin_actions.c.id).order_by(desc(admin_actions.c.id)).offset(KEEP_ACTIONS)
        ).first()
        if cutoff is not None:
            connection.execute(delete(admin_actions).where(admin_actions.c.id <= cutoff.id))


def last_action(engine: Engine, homeserver: str, target: str) -> Action | None:
    with engine.connect() as connection:
        row = connection.execute(
            select(admin_actions)
            .where(admin_actions.c.homeserver == homeserver, admin_actions.c.target == target)
            .order_by(desc(admin_actions.c.ts), desc(admin_actions.c.id))
            .limit(1)
        ).first()
    if row is None:
        return None
    return Action(row.ts, row.homeserver, row.user_id, row.action, row.target, row.outcome)


def actions_since(engine: Engine, homeserver: str, target: str, since_ms: int) -> list[Action]:
    """What administrators did to `target` on `homeserver` since `since_ms`, oldest first."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(admin_actions)
            .where(
                admin_actions.c.homeserver == homeserver,
                admin_actions.c.target == target,
                admin_actions.c.ts >= since_ms,
            )
            .order_by(admin_actions.c.ts, admin_actions.c.id)
        ).all()
    return [Action(r.ts, r.homeserver, r.user_id, r.action, r.target, r.outcome) for r in rows]
