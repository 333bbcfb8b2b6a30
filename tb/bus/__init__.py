"""Testbenches of tessera.rtl.bus blocks."""
