"""Fluxbase data API: request -> parse -> plan -> query -> response."""
