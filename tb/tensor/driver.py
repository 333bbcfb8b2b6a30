"""One-coroutine driver and checker for the tensor core's streams (fast enough for benchmarks).

:class:`CoreDriver` drives ``op``, ``a``, ``b`` and ``c`` and consumes ``d`` in a single
coroutine (one ``RisingEdge`` per cycle, a few signal accesses per cycle), with optional random
valid gaps on the inputs and random ``ready`` on ``d``. Every result beat is checked against the
golden model (bit-exact, lanes inside N), its ``row``/``col`` against the documented order and
``last`` against the end of the operation. Cycle stamps of the first operand accepted and of
the last result delivered are recorded per operation.
"""

from __future__ import annotations

import collections

import numpy as np
from cocotb.triggers import RisingEdge

from tessera.rtl.tensor.interface import d_layout, op_layout
from tessera.tb.stream import layout_fields, pack, unpack


class Op:
    """One operation: a descriptor, its streams (None for a rejected one) and the golden D."""

    def __init__(self, m, n, k, dtype_code, accumulate, streams=None, expect=None, bad=False):
        self.m, self.n, self.k = m, n, k
        self.dtype_code, self.accumulate = dtype_code, accumulate
        self.streams, self.expect, self.bad = streams, expect, bad
        self.first_operand = None
        self.last_result = None
        self.accepted = None
        self.results = None if expect is None else np.zeros(expect.shape, dtype=np.uint32)
        self.beats = 0


class CoreDriver:
    def __init__(self, dut, cfg, *, rng=None, ab_idle=0.0, c_idle=0.0, d_ready=1.0, keep_results=False):
        self.dut, self.cfg = dut, cfg
        self.rng = rng
        self.ab_idle, self.c_idle, self.d_ready = ab_idle, c_idle, d_ready
        self.op_fields = layout_fields(op_layout(cfg))
        dfields = layout_fields(d_layout(cfg))
        self.d_fields = [f for f in dfields if f[0] != "data"]
        self.data_bits = 32 * cfg.cols
        assert dfields[0] == ("data", self.data_bits)
        self.keep_results = keep_results
        self.errors: list[str] = []
        self.cycle = 0
        self.error_after_accept: list[tuple[bool, int]] = []

    def descriptor(self, op: Op) -> int:
        return pack(self.op_fields, {"m": op.m, "n": op.n, "k": op.k, "dtype": op.dtype_code,
                                     "accumulate": op.accumulate})

    def _error(self, msg):
        if len(self.errors) < 20:
            self.errors.append(msg)

    async def run(self, ops: list[Op], max_cycles: int):
        dut, cols = self.dut, self.cfg.cols
        rng = self.rng
        clk = dut.clk
        good = [op for op in ops if not op.bad]

        def ab_source():
            for op in good:
                for a, b in op.streams.ab():
                    yield op, a, b

        def c_source():
            for op in good:
                if op.accumulate:
                    yield from op.streams.c_beats()

        # Expected result beats, in order: (op, row, col, is_last)
        expected = collections.deque()
        for op in good:
            order = list(op.streams.row_order())
            for x, (row, col) in enumerate(order):
                expected.append((op, row, col, x == len(order) - 1))
        total = len(expected)

        descs = collections.deque((op, self.descriptor(op)) for op in ops)
        ab_it, c_it = ab_source(), c_source()
        cur_ab = next(ab_it, None)
        cur_c = next(c_it, None)
        a_valid = b_valid = c_valid = op_valid = 0
        cur_op = None
        pending_err_check = None
        got = 0

        sig = {name: getattr(dut, name) for name in (
            "op__valid", "op__ready", "op__payload", "a__valid", "a__ready", "a__payload",
            "b__valid", "b__ready", "b__payload", "c__valid", "c__ready", "c__payload",
            "d__valid", "d__ready", "d__payload", "error")}
        d_ready = 1
        sig["d__ready"].value = 1
        for name in ("op__valid", "a__valid", "b__valid", "c__valid"):
            sig[name].value = 0
        data_mask = (1 << self.data_bits) - 1
        lane_mask = 0xFFFFFFFF

        for cyc in range(max_cycles):
            await RisingEdge(clk)
            self.cycle = cyc
            # ---- transfers at this edge
            if pending_err_check is not None:
                op_chk, want = pending_err_check
                err = int(sig["error"].value)
                self.error_after_accept.append((want, err))
                if err != want:
                    self._error(f"error flag {err} after descriptor m={op_chk.m} n={op_chk.n} k={op_chk.k} "
                                f"dtype={op_chk.dtype_code}, expected {want}")
                pending_err_check = None
            if op_valid and int(sig["op__ready"].value):
                op_valid = 0
                cur_op.accepted = cyc
                pending_err_check = (cur_op, 1 if cur_op.bad else 0)
            if a_valid and b_valid and int(sig["a__ready"].value):
                op_ab = cur_ab[0]
                if op_ab.first_operand is None:
                    op_ab.first_operand = cyc
                cur_ab = next(ab_it, None)
                a_valid = b_valid = 0
            if c_valid and int(sig["c__ready"].value):
                cur_c = next(c_it, None)
                c_valid = 0
            if d_ready and int(sig["d__valid"].value):
                word = int(sig["d__payload"].value)
                meta = unpack(self.d_fields, word >> self.data_bits)
                data = word & data_mask
                if not expected:
                    self._error(f"unexpected result beat row={meta['row']} col={meta['col']}")
                else:
                    op, row, col, last = expected.popleft()
                    got += 1
                    op.beats += 1
                    if (meta["row"], meta["col"], meta["last"]) != (row, col, int(last)):
                        self._error(f"beat {got}: row/col/last {meta['row']}/{meta['col']}/{meta['last']}, "
                                    f"expected {row}/{col}/{int(last)}")
                    for j in range(min(cols, op.n - col)):
                        v = (data >> (32 * j)) & lane_mask
                        e = int(op.expect[row, col + j])
                        if self.keep_results:
                            op.results[row, col + j] = v
                        if v != e:
                            self._error(f"D[{row},{col + j}] = {v:#010x}, expected {e:#010x} "
                                        f"(dtype {op.dtype_code}, m={op.m} n={op.n} k={op.k})")
                    if last:
                        op.last_result = cyc
            # ---- drive the next beats
            if not op_valid and descs:
                cur_op, word = descs.popleft()
                sig["op__payload"].value = word
                sig["op__valid"].value = op_valid = 1
            elif not op_valid:
                sig["op__valid"].value = 0
            if not a_valid and cur_ab is not None:
                if self.ab_idle <= 0 or rng.random() >= self.ab_idle:
                    sig["a__payload"].value = cur_ab[1]
                    sig["b__payload"].value = cur_ab[2]
                    a_valid = b_valid = 1
                sig["a__valid"].value = a_valid
                sig["b__valid"].value = b_valid
            elif not a_valid:
                sig["a__valid"].value = 0
                sig["b__valid"].value = 0
            if not c_valid and cur_c is not None:
                if self.c_idle <= 0 or rng.random() >= self.c_idle:
                    sig["c__payload"].value = cur_c
                    c_valid = 1
                sig["c__valid"].value = c_valid
            elif not c_valid:
                sig["c__valid"].value = 0
            if self.d_ready < 1.0:
                d_ready = 1 if rng.random() < self.d_ready else 0
                sig["d__ready"].value = d_ready
            if got == total and not descs and not op_valid and cur_ab is None and pending_err_check is None:
                break
        else:
            self._error(f"timeout after {max_cycles} cycles: {got} of {total} result beats")
        if expected and len(self.errors) < 20:
            self._error(f"{len(expected)} result beats never arrived")
        return got
