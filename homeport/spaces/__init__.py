"""Internal spaces: one homeserver's spaces whose rooms never federate (the single model)."""
