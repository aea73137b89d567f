"""Federation and visibility policy, pure: effective settings, lint, what each surface means."""
