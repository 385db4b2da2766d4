"""Alembic's script directory (env.py, versions/) and the metadata its revisions must reproduce."""
