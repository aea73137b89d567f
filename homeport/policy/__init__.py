"""Federation and visibility policy: what it means (pure), lint, and verification."""
