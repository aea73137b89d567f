"""One homeserver as Homeport runs it: its configuration rendered from the model (pure),
its workers' configuration and routes, and its Synapse processes as services."""
