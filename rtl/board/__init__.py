"""tessera.rtl.board: gateware for the FPGA board and the synthesis flows.

The UART (:mod:`.uart`), the UART-to-AXI4-Lite bridge (:mod:`.uart_axil`), the AXI block RAM
(:mod:`.axi_bram`), the port bank around a block (:mod:`.port_bank`), the board's host links
(:mod:`.host_link`, :mod:`.fabric_link`), and the timing harness and probe that
:mod:`tessera.synth.table` synthesises (:mod:`.boundary`, :mod:`.probe`). Their PC side is
:mod:`tessera.runtime.board_link` and :mod:`tessera.runtime.board_gemm`.
"""
