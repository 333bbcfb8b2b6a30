"""``NumericUnits``: the three numeric units side by side, for one Verilator build.

A testbench wrapper (not a hardware block). Each unit can be instantiated at several
latencies at once; the copies of one unit share its operand ports and clock enable
(``fmul_a``, ``fmul_b``, ``fmul_en``; ``fadd_*``; ``mac_a``, ``mac_b``, ``mac_c``, ``mac_en``)
and each copy has its own output, named after its latency: ``fmul_p2``, ``fadd_s3``,
``mac_s1``. So one build and one simulation check every unit at every latency.
Used by tests/test_numeric.py and ``tessera sim``.
"""

from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.numeric import BF16Multiplier, FP32Adder, Int8Mac

# unit -> (class, port prefix, operand ports and shapes, output port, output shape)
UNITS = {
    "bf16_mul": (BF16Multiplier, "fmul", {"a": 16, "b": 16}, "p", 32),
    "fp32_add": (FP32Adder, "fadd", {"a": 32, "b": 32}, "s", 32),
    "int8_mac": (Int8Mac, "mac", {"a": signed(8), "b": signed(8), "c": signed(32)}, "s", signed(32)),
}


class NumericUnits(wiring.Component):
    """``latencies``: unit name (``bf16_mul``, ``fp32_add``, ``int8_mac``) -> latencies to build."""

    def __init__(self, latencies: dict):
        self.copies = []    # (unit name, latency, component, output port name)
        members = {}
        for unit, lats in latencies.items():
            if unit not in UNITS:
                raise ValueError(f"NumericUnits: unknown unit {unit!r}; allowed: {', '.join(UNITS)}")
            cls, prefix, operands, out, out_shape = UNITS[unit]
            if not lats:
                continue
            for port, shape in operands.items():
                members[f"{prefix}_{port}"] = In(shape)
            members[f"{prefix}_en"] = In(1)
            for lat in sorted(set(lats)):
                members[f"{prefix}_{out}{lat}"] = Out(out_shape)
                self.copies.append((unit, lat, cls(latency=lat), f"{prefix}_{out}{lat}"))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        for unit, lat, dut, out_port in self.copies:
            _, prefix, operands, out, _ = UNITS[unit]
            m.submodules[f"{prefix}_l{lat}"] = dut
            for port in (*operands, "en"):
                m.d.comb += getattr(dut, port).eq(getattr(self, f"{prefix}_{port}"))
            m.d.comb += getattr(self, out_port).eq(getattr(dut, out))
        return m
