"""Testbenches of the numeric units (rtl/numeric)."""
