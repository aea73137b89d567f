"""Talking to Synapse over HTTP: the client and admin APIs, typed, and Homeport's own
admin account. Code that runs inside Synapse is `homeport.synapse_module`; its config
is rendered by `homeport.homeserver`."""
