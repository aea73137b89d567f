"""Homeport's own database: what Homeport's capabilities keep between runs.

SQLite in the data folder by default, PostgreSQL by a `postgresql://` URL
(`store.database`). SQLAlchemy Core speaks to both; Alembic migrations bring
the schema up to date (`homeport up` and `homeport store migrate`).
"""
