"""Tessera verification: cocotb testbenches, reusable stream VIP, and the Verilator harness."""

import json
import os


def params() -> dict:
    """Parameters handed to a cocotb testbench by :func:`tessera.tools.harness.run`."""
    return json.loads(os.environ.get("TESSERA_PARAMS", "{}"))
