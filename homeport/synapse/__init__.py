"""Everything Homeport does with Synapse: render its config, run it, talk to it."""
