"""Tessera: an open tensor fabric in Amaranth.

The package has four layers; each imports only the layers before it (README "Layout",
``tests/test_regression_setup.py`` enforces it):

1. ``tessera.rtl`` -- hardware: the blocks, the encodings (ISA, CSR map, counters) and the
   board gateware (folder ``rtl/``).
2. ``tessera.runtime`` -- the GEMM planner, the assembler and the host sessions (``sim/runtime/``).
3. ``tessera.tools`` and ``tessera.synth`` -- Verilog export and Verilator builds, runs, lint,
   synthesis flows (``sim/tools/``, ``synth/``).
4. ``tessera.api`` -- the Python API (``sim/api.py``: :func:`run_gemm`, :func:`estimate_gemm`,
   :func:`reference_gemm`, :func:`presets`; re-exported here, imported on first use) and
   ``tessera.cli`` -- the ``tessera`` command line (``sim/cli/``).

Verification, ``tessera.tb`` (folder ``tb/``), may import layers 1-3; only the tests and the
benchmark commands of the command line import it.
"""

__version__ = "0.1.0"

_API = ("run_gemm", "estimate_gemm", "reference_gemm", "presets", "GemmResult", "GemmRun")
__all__ = ["__version__", *_API]


def __getattr__(name):
    # ``import tessera`` stays cheap: the API (and the hardware it pulls in) loads on first use.
    if name in _API:
        from tessera import api

        return getattr(api, name)
    raise AttributeError(f"module 'tessera' has no attribute {name!r}")
