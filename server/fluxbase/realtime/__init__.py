"""Realtime service: change listener -> hub -> Phoenix channels wire (realtime-js compatible)."""
