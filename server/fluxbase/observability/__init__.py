"""Logs, audit events and metrics: what operators see of a running Fluxbase."""
