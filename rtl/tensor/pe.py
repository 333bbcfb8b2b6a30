"""One processing element of the output-stationary systolic array."""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.config import NumericConfig
from tessera.rtl.numeric.bf16_mul import BF16Multiplier
from tessera.rtl.numeric.fp32_add import FP32Adder
from tessera.rtl.numeric.int8_mac import Int8Mac
from tessera.rtl.tensor.interface import STEP_CONTROL

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """A processing element: one MAC per cycle into ``interleave`` interleaved accumulators.

    Operands ``a_in``/``b_in`` and the step control ``ctl_in`` are registered on entry and
    forwarded to the right/lower neighbour from those registers (``a_out``, ``b_out``,
    ``ctl_out``: one cycle per hop). Every cycle is a step; there is no stall.

    Accumulation: the accumulators of ``T = interleave`` independent outputs (the slots) circulate
    through a loop of exactly ``T`` cycles: the FP32 adder (or the INT8 MAC) followed by delay
    registers. The step arriving in a cycle accumulates into the slot that is at the loop input
    then, so consecutive steps serve slots 0, 1, .., T-1, 0, ... and the loop-carried FP32
    addition never stalls: one MAC per cycle. In BF16 mode a step computes
    ``acc = RNE32(acc + RNE32(a * b))`` (the multiplier result enters the adder ``fmul_latency``
    cycles after the operand registers); in INT8 mode ``acc += int8(a) * int8(b)`` (wrapping),
    with the operands delayed by ``fmul_latency`` so that both dtypes meet the loop at the same
    stage. Both loops run every cycle; the one that matches the dtype of the step that entered
    ``T`` cycles earlier is the loop's output. A bubble step (a = 0x8000, b = 0) leaves every
    accumulator unchanged in both dtypes.

    Swap: a step with ``ctl.first`` (the k == 0 step of a slot) starts that slot from the head of
    the chain buffer (or from +0 when ``ctl.zero``) and pushes the loop output -- the finished
    result of the same slot of the previous group -- into the tail of the buffer. After the T
    first-steps of a group the buffer holds the T finished results, slot t in entry t.

    Chain buffer: ``T`` x 32-bit registers, shifted (``shift`` high) toward ``chain_out`` (entry 0)
    with ``chain_in`` entering entry ``T-1``; the array links the buffers of a column into one
    shift register to unload results and load C values while the next group computes. ``shift``
    and a swap never coincide (the core's controller guarantees it); a swap wins.

    Errors: none (IEEE special values follow the numeric units). ``ValueError`` if
    ``interleave`` is shorter than a loop latency.
    """

    def __init__(self, numeric: NumericConfig | None = None, interleave: int | None = None):
        numeric = numeric or NumericConfig()
        if not isinstance(numeric, NumericConfig):
            raise ValueError("ProcessingElement numeric must be a NumericConfig")
        lat = max(numeric.fadd_latency, numeric.mac8_latency)
        if interleave is None:
            interleave = lat
        if isinstance(interleave, bool) or not isinstance(interleave, int) or not lat <= interleave <= 8:
            raise ValueError(f"ProcessingElement interleave = {interleave!r} is not allowed; "
                             f"allowed: {lat}..8 "
                             f"(at least max(fadd_latency, mac8_latency))")
        self.numeric = numeric
        self.interleave = interleave
        super().__init__({
            "a_in": In(16), "b_in": In(16), "ctl_in": In(STEP_CONTROL),
            "a_out": Out(16), "b_out": Out(16), "ctl_out": Out(STEP_CONTROL),
            "shift": In(1), "chain_in": In(32), "chain_out": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        T = self.interleave
        lm = self.numeric.fmul_latency

        def delay(sig, n, name):
            """``sig`` delayed by ``n`` registers."""
            for i in range(n):
                reg = Signal.like(sig, name=f"{name}_d{i + 1}")
                m.d.sync += reg.eq(sig)
                sig = reg
            return sig

        # Operand registers, also the outputs to the neighbours.
        a = Signal(16)
        b = Signal(16)
        ctl = Signal(STEP_CONTROL)
        m.d.sync += [a.eq(self.a_in), b.eq(self.b_in), ctl.eq(self.ctl_in)]
        m.d.comb += [self.a_out.eq(a), self.b_out.eq(b), self.ctl_out.eq(ctl)]

        m.submodules.fmul = fmul = BF16Multiplier(latency=lm)
        m.submodules.fadd = fadd = FP32Adder(latency=self.numeric.fadd_latency)
        m.submodules.mac = mac = Int8Mac(latency=self.numeric.mac8_latency)

        # Everything below is aligned to the accumulation stage, lm cycles after the operands.
        m.d.comb += [fmul.a.eq(a), fmul.b.eq(b)]
        ctl_m = delay(ctl, lm, "ctl")
        a8 = delay(a[:8], lm, "a8")
        b8 = delay(b[:8], lm, "b8")

        buf = [Signal(32, name=f"buf{t}") for t in range(T)]
        acc_in = Signal(32)
        tail_f = delay(fadd.s, T - self.numeric.fadd_latency, "tail_f")
        tail_i = delay(mac.s, T - self.numeric.mac8_latency, "tail_i")
        int8_tail = delay(ctl_m.int8, T, "int8")
        tail = Signal(32)
        m.d.comb += [
            tail.eq(Mux(int8_tail, tail_i, tail_f)),
            acc_in.eq(Mux(ctl_m.first, Mux(ctl_m.zero, 0, buf[0]), tail)),
            fadd.a.eq(acc_in), fadd.b.eq(fmul.p),
            mac.a.eq(a8), mac.b.eq(b8), mac.c.eq(acc_in),
            self.chain_out.eq(buf[0]),
        ]

        def push(value):
            m.d.sync += [buf[t].eq(buf[t + 1]) for t in range(T - 1)]
            m.d.sync += buf[T - 1].eq(value)

        with m.If(ctl_m.first):
            push(tail)
        with m.Elif(self.shift):
            push(self.chain_in)
        return m
