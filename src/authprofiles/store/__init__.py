"""Persistence: SQLAlchemy tables, Alembic migrations and AES-256-GCM encryption at rest."""
