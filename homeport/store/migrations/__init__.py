"""Alembic migrations of Homeport's store, written by hand, one file per schema step."""
