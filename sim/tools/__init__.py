"""tessera.tools: the toolchain around the hardware.

The pinned toolchain (:mod:`.toolchain`), the Verilator build-and-run harness (:mod:`.harness`),
GEMM runs on the Verilated fabric (:mod:`.fabric_run`) and lint (:mod:`.lint`). Imports
:mod:`tessera.rtl` and :mod:`tessera.runtime`.
"""
