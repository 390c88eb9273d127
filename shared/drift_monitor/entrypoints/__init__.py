"""Entrypoints layer."""
