"""Fluxbase: a Backend-as-a-Service where PostgreSQL does the logic."""

__version__ = "0.1.0"
