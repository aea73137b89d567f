"""Backups of what matters, and their restore: `homeport backup` and `homeport restore`."""
