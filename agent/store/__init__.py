"""The store: SQLAlchemy 2 models, engine set-up, ownership lock and Alembic migrations."""
