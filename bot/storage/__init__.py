"""Persistence: SQLModel tables, the async engine and session factory, Alembic migrations."""
