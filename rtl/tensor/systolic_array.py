# amaranth: UnusedElaboratable=no
# (Amaranth's linter option, on the first line: a PE built only for its signature)
"""The R x C output-stationary systolic array: processing elements, operand skew, result chains."""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Module, ResetSignal, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from tessera.rtl.config import TensorConfig
from tessera.rtl.tensor.interface import STEP_CONTROL
from tessera.rtl.tensor.pe import ProcessingElement

__all__ = ["SystolicArray"]


class SystolicArray(wiring.Component):
    """``rows`` x ``cols`` :class:`ProcessingElement` s; PE (i, j) owns outputs (row i, column j)
    of ``interleave`` output blocks at a time.

    Every cycle is a step: ``a`` (lane i: the A operand for PE row i), ``b`` (lane j: the B
    operand for PE column j) and ``ctl`` are registered at the edge, skewed (lane i of A and the
    control of row i by i cycles, lane j of B by j cycles) and pass through the PEs, A rightwards
    and B downwards, one cycle per PE. A step presented in cycle t reaches the operand registers of
    PE (i, j) in cycle t + 2 + i + j, and its accumulation (and, with ``ctl.first``, its swap)
    takes effect at the end of cycle t + 2 + i + j + fmul_latency. :attr:`settle` is the number of
    cycles after a step after which every PE has completed its swap. There is no stall: to
    idle, present bubble steps (``BUBBLE_A``/``BUBBLE_B``, no control bits).

    Result chains: the chain buffers of column j form one shift register of ``rows * interleave``
    32-bit entries, ``chain_in[j]`` entering at PE (rows-1, j) and ``chain_out[j]`` leaving PE
    (0, j). With ``shift`` high all columns shift by one. Position ``p = i * interleave + t`` holds
    slot t of PE row i; after ``rows * interleave`` shifts the value shifted in at shift n sits at
    position n. ``shift`` must be low while any swap may happen (see :attr:`settle`).

    ``pe_module``: if given, each PE is an ``Instance`` of the Verilog module of that name instead
    of an inline sub-component, so that the Verilog holds one PE definition instead of R x C
    copies (much faster to export and build; see :func:`tessera.rtl.tensor.export.verilog_hierarchical`,
    which appends the PE module). Same behaviour either way.

    Errors: none.
    """

    def __init__(self, cfg: TensorConfig | None = None, pe_module: str | None = None):
        cfg = cfg or TensorConfig()
        if not isinstance(cfg, TensorConfig):
            raise ValueError("SystolicArray cfg must be a TensorConfig")
        self.cfg = cfg
        self.rows, self.cols, self.interleave = cfg.rows, cfg.cols, cfg.interleave
        self.settle = cfg.rows + cfg.cols + cfg.numeric.fmul_latency + 2
        self.pe_module = pe_module
        super().__init__({
            "a": In(data.ArrayLayout(16, cfg.rows)),
            "b": In(data.ArrayLayout(16, cfg.cols)),
            "ctl": In(STEP_CONTROL),
            "shift": In(1),
            "chain_in": In(data.ArrayLayout(32, cfg.cols)),
            "chain_out": Out(data.ArrayLayout(32, cfg.cols)),
        })

    def elaborate(self, platform):
        m = Module()
        R, C = self.rows, self.cols

        def delay(sig, n, name):
            for i in range(n):
                reg = Signal.like(sig, name=f"{name}_{i + 1}")
                m.d.sync += reg.eq(sig)
                sig = reg
            return sig

        # Edge registers, then the skew: lane i of A (and row i's control) by i, lane j of B by j.
        a_e = Signal.like(self.a, name="a_edge")
        b_e = Signal.like(self.b, name="b_edge")
        ctl_e = Signal(STEP_CONTROL, name="ctl_edge")
        m.d.sync += [a_e.eq(self.a), b_e.eq(self.b), ctl_e.eq(self.ctl)]
        a_skew = [delay(a_e[i], i, f"a_skew{i}") for i in range(R)]
        b_skew = [delay(b_e[j], j, f"b_skew{j}") for j in range(C)]
        ctl_tap = [ctl_e]
        for i in range(1, R):
            ctl_tap.append(delay(ctl_tap[-1], 1, f"ctl_skew{i}"))

        pe = [[self._pe(m, f"pe_{i}_{j}") for j in range(C)] for i in range(R)]
        for i in range(R):
            for j in range(C):
                p = pe[i][j]
                left = pe[i][j - 1] if j else None
                up = pe[i - 1][j] if i else None
                m.d.comb += [
                    p.a_in.eq(left.a_out if left else a_skew[i]),
                    p.ctl_in.eq(left.ctl_out if left else ctl_tap[i]),
                    p.b_in.eq(up.b_out if up else b_skew[j]),
                    p.shift.eq(self.shift),
                    p.chain_in.eq(pe[i + 1][j].chain_out if i + 1 < R else self.chain_in[j]),
                ]
        m.d.comb += [self.chain_out[j].eq(pe[0][j].chain_out) for j in range(C)]
        return m

    def _pe(self, m, name):
        """A PE as a sub-component, or as an Instance of ``pe_module`` with the same ports."""
        pe = ProcessingElement(self.cfg.numeric, self.interleave)
        if self.pe_module is None:
            m.submodules[name] = pe
            return pe
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for pname, member in pe.signature.members.items():
            sig = Signal(member.shape, name=f"{name}_{pname}")
            ports[("i_" if member.flow == wiring.In else "o_") + pname] = sig
        m.submodules[name] = Instance(self.pe_module, **ports)
        return _Ports({pname: ports[("i_" if mem.flow == wiring.In else "o_") + pname]
                       for pname, mem in pe.signature.members.items()})


class _Ports:
    """Attribute access to the signals of an instantiated PE."""

    def __init__(self, signals: dict):
        self.__dict__.update(signals)
