"""tessera.runtime: what runs a workload on a fabric, with no simulator and no testbench.

The GEMM planner (:mod:`.gemm_map`), the tile-ISA assembler (:mod:`.asm`), GEMM inputs
(:mod:`.gemm_inputs`) and the PC side of the board (:mod:`.board_link`, :mod:`.board_gemm`).
Imports only :mod:`tessera.rtl`.
"""
