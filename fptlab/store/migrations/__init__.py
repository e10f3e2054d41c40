"""Alembic migrations of the results schema (a package so that it ships with fptlab)."""
