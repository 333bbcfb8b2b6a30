"""tessera.runtime: what runs a workload on a fabric, with no simulator and no testbench.

The GEMM planner (:mod:`.gemm_map`), the tile-ISA assembler and its checks (:mod:`.asm`,
:mod:`.isa`), GEMM inputs (:mod:`.gemm_inputs`, :mod:`.random_data`), the host sequence of the
fabric, written once for the simulation and the board (:mod:`.host`), and the PC side of the board
(:mod:`.board_link`, :mod:`.board_gemm`). Imports only :mod:`tessera.rtl`.
"""
