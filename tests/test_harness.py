"""The harness and stream VIP themselves: a FIFO under random valid gaps and back-pressure."""

from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from tb.harness import run


class _StreamFifo(wiring.Component):
    def __init__(self, width, depth):
        self.width, self.depth = width, depth
        super().__init__({"i": In(stream.Signature(width)), "o": Out(stream.Signature(width))})

    def elaborate(self, platform):
        from amaranth import Module

        m = Module()
        m.submodules.fifo = fifo = SyncFIFOBuffered(width=self.width, depth=self.depth)
        m.d.comb += [
            fifo.w_data.eq(self.i.payload), fifo.w_en.eq(self.i.valid), self.i.ready.eq(fifo.w_rdy),
            self.o.payload.eq(fifo.r_data), self.o.valid.eq(fifo.r_rdy), fifo.r_en.eq(self.o.ready),
        ]
        return m


def test_stream_vip_through_fifo():
    run(_StreamFifo(37, 4), "tb.common.test_stream_fifo", name="stream_fifo",
        params={"width": 37, "count": 2000})


def test_stream_vip_through_fifo_at_os():
    """The same FIFO built with g++ -Os (a separate build directory: the option is in its key)."""
    from tb.harness import build

    d_os = build(_StreamFifo(37, 4), "stream_fifo", cxx_opt="-Os")
    assert d_os != build(_StreamFifo(37, 4), "stream_fifo", cxx_opt="-O0")
    assert " -Os " in (d_os / "build.log").read_text()
    run(_StreamFifo(37, 4), "tb.common.test_stream_fifo", name="stream_fifo", cxx_opt="-Os",
        params={"width": 37, "count": 500})


def test_bad_cxx_opt_raises():
    import pytest

    from tb.harness import build

    with pytest.raises(ValueError, match="cxx_opt"):
        build(lambda: _StreamFifo(8, 2), "stream_fifo", cxx_opt="-O9")
