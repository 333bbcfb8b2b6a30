"""Benches of the vector engine (docs/vector.md)."""
