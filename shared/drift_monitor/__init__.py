"""Embedding drift monitor: the package every function imports."""
