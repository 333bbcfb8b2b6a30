"""The tile sequencer with port-level formal properties (docs/verification.md): a malformed word
always reaches the error state.

:class:`SequencerProperties` has the sequencer's own ports, passed through
(:class:`tessera.tb.formal.harness.PortHarness`), so that the solver drives every input. Written
from docs/isa.md, not from the RTL: the opcode is bits 3:0 of the word (1 .. 7 are instructions),
and a LOAD's or STORE's ``mode`` is bits 5:4 (3 is reserved).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, ResetSignal, Signal

from tessera.rtl.tile.sequencer import Sequencer
from tessera.tb.formal.harness import PortHarness

__all__ = ["SequencerProperties"]

ERROR, ILLEGAL_OPCODE, BAD_FIELD = 3, 1, 2     # docs/isa.md: state ERROR, error codes 1 and 2


class SequencerProperties(PortHarness):
    """Asserted: after the sequencer takes a word whose opcode is not an instruction's (0, 8 .. 15),
    the tile is in ERROR with ILLEGAL_OPCODE ``check_cycles`` cycles later; after a LOAD or STORE
    with the reserved ``mode`` 3, in ERROR with BAD_FIELD; and from the word on, no descriptor is
    offered. Assumed while a word is being checked: no reset, ``clear`` or ``fault`` (each of which
    rightly changes the outcome)."""

    check_cycles = 3        # the word is taken, then SIZE, CHECK, and ERROR is visible (docs/isa.md)

    def __init__(self, cfg):
        self.cfg = cfg
        super().__init__(Sequencer(cfg))

    def properties(self, m):
        word = self.cmd.payload.as_value()
        opcode, mode = word[0:4], word[4:6]
        take = self.cmd.valid & self.cmd.ready
        bad_opcode = (opcode == 0) | (opcode >= 8)
        bad_mode = ((opcode == 1) | (opcode == 2)) & (mode == 3)
        age = Signal(range(self.check_cycles + 1))       # cycles since a malformed word was taken
        want = Signal(4)                            # the error code it must give
        with m.If(age == 0):
            with m.If(take & (bad_opcode | bad_mode)):
                m.d.sync += [age.eq(1), want.eq(ILLEGAL_OPCODE)]
                with m.If(~bad_opcode):
                    m.d.sync += want.eq(BAD_FIELD)
        with m.Elif(age < self.check_cycles):
            m.d.sync += age.eq(age + 1)
        offered = self.load.valid | self.store.valid | self.matmul.valid | self.vector.valid
        status = self.status.as_value()
        state, error = status[0:2], status[2:6]
        m.d.comb += [
            Assume((age == 0) | ~(ResetSignal() | self.clear | self.fault)),
            Assert((age == 0) | ~offered),
            Assert((age != self.check_cycles) | ((state == ERROR) & (error == want))),
        ]
