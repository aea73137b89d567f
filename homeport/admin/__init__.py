"""The admin website: Starlette app, views per tab, templates; run by `up` as a child."""
