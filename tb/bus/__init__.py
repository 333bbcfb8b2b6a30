"""Testbenches of rtl.bus blocks."""
