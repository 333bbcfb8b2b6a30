"""``GeluUnit``: gelu(x) = x Phi(x) on FP32 bit patterns, bit-exact with the vector golden model
(docs/vector.md)."""

from __future__ import annotations

import struct

from amaranth.hdl import Array, Cat, Const, Mux

from tessera.rtl.vector.dataflow import CANONICAL_NAN, Dataflow, DataflowUnit, Node, is_nan, trunc_int

__all__ = ["GeluUnit", "GELU_TABLE", "GELU_CENTRES"]

# Phi's polynomials, interval i = [-6 + i / 2, -5.5 + i / 2): c0 .. c6 (FP32 bits). A copy of the
# contract's table (docs/vector.md; tb/models/vector.py GELU_TABLE, which tests/test_vector_sfu.py
# checks this against: rtl never imports tb).
GELU_TABLE = (
    (0x3199528F, 0x32E2B7EE, 0x33A2DFC2, 0x3417294D, 0x344DB299, 0x345F68BA, 0x3422C0CC),
    (0x33A35124, 0x34DDA6B8, 0x35916B94, 0x35F50567, 0x36159C02, 0x360FAC42, 0x35BCF42E),
    (0x358882DC, 0x36A8C3B9, 0x374861F4, 0x37978463, 0x37A3D572, 0x378875AB, 0x371D990D),
    (0x373352EE, 0x384825CA, 0x38D4A571, 0x390E3E3D, 0x3905AA46, 0x38BBC84E, 0x38362694),
    (0x38B96CAE, 0x39B8DCAA, 0x3A2D4E4A, 0x3A493512, 0x3A1FDB8A, 0x39B4E396, 0x3906FB2B),
    (0x3A17437F, 0x3B04F9C6, 0x3B5815EA, 0x3B53EED7, 0x3B082DA2, 0x3A6281B3, 0x39473E58),
    (0x3B434821, 0x3C14FD26, 0x3C4CDC3E, 0x3C22F73E, 0x3B9BBC33, 0x3A90AD56, 0xB8E35EB2),
    (0x3C484927, 0x3D02016E, 0x3D1241AB, 0x3CB00E5A, 0x3BC90866, 0xBA005A0D, 0xBA7D4E44),
    (0x3D241512, 0x3DB0B22A, 0x3D9A9BE2, 0x3CF2F3B0, 0x39CE4879, 0xBB8C9AEF, 0xBAAA5521),
    (0x3DD85EE9, 0x3E3B085E, 0x3DE9CA68, 0x3C8C40A1, 0xBC5FFCF1, 0xBBC150C6, 0x3A0DB758),
    (0x3E681100, 0x3E9A2EB0, 0x3DE74601, 0xBCB3E385, 0xBCBBE31C, 0xB8E713E4, 0x3B43E868),
    (0x3ECD765D, 0x3EC5F95C, 0x3D45F96A, 0xBD777462, 0xBC41DFAB, 0x3C091E60, 0x3AFCD77C),
    (0x3F1944D1, 0x3EC5F95C, 0xBD45F94E, 0xBD77745D, 0x3C41CD47, 0x3C091D84, 0xBAF6B8F8),
    (0x3F45FBC0, 0x3E9A2EB0, 0xBDE74606, 0xBCB3E38F, 0x3CBBE6B5, 0xB8E6908F, 0xBB451B1A),
    (0x3F64F423, 0x3E3B085E, 0xBDE9CA76, 0x3C8C4075, 0x3C60100C, 0xBBC147F2, 0xBA1A7808),
    (0x3F75BEAF, 0x3DB0B22A, 0xBD9A9BE6, 0x3CF2F3A0, 0xB9CDA86B, 0xBB8C97C9, 0x3AA8A8AA),
    (0x3F7CDEDB, 0x3D02016E, 0xBD12419E, 0x3CB00E7C, 0xBBC91918, 0xBA009024, 0x3A817512),
    (0x3F7F3CB8, 0x3C14FD25, 0xBC4CDC17, 0x3C22F77E, 0xBB9BC969, 0x3A9093A3, 0x390383CA),
    (0x3F7FDA2F, 0x3B04F9C5, 0xBB5815DD, 0x3B53EEF0, 0xBB082FF4, 0x3A627C92, 0xB945AB6F),
    (0x3F7FFA35, 0x39B8DCB3, 0xBA2D4ECE, 0x3A4933E7, 0xBA1FC4B1, 0x39B501C2, 0xB90AE171),
    (0x3F7FFF4D, 0x384825FD, 0xB8D4A7FA, 0x390E3AF9, 0xB9057133, 0x38BC1D47, 0xB83FF593),
    (0x3F7FFFEF, 0x36A8C444, 0xB7486835, 0x37977B50, 0xB7A346BE, 0x3788EC4B, 0xB729F4A8),
    (0x3F7FFFFF, 0x34DDA898, 0xB591755A, 0x35F4E5B1, 0xB614B99A, 0x36107C96, 0xB5D0BB1A),
    (0x3F800000, 0x32E2BC55, 0xB3A2F4A7, 0x341703A4, 0xB44BC62D, 0x34615A6F, 0xB4387717),
)
GELU_N, GELU_DEG = 24, 6
GELU_CENTRES = tuple(struct.unpack("<I", struct.pack("<f", -5.75 + 0.5 * i))[0] for i in range(GELU_N))
TWO, TWELVE = 0x40000000, 0x41400000
SIX = 0x40C00000
NEG_ZERO = 0x80000000


def interval(u):
    """The model's i = clip(trunc(nan_to_num(u)), 0, 23) for u = 2x + 12: NaN and +-inf give 0
    (``nan_to_num(nan=0, posinf=0, neginf=0)``), negative u gives 0, u >= 24 gives 23."""
    magnitude, big = trunc_int(u, 5)
    special = u[31] | (u[23:31] == 0xFF)
    return Mux(special, 0, Mux(big | (magnitude > GELU_N - 1), GELU_N - 1, magnitude))[0:5]


def lookup(column, i):
    """The FP32 constant ``column[i]`` (a 24-way select)."""
    return Array(Const(v, 32) for v in column)[i]


def special_cases(x):
    """(x >= 6, x < -6, NaN) by the model's key ordering of the patterns."""
    magnitude = x[0:31]
    return Cat(~x[31] & (magnitude >= SIX), x[31] & (magnitude > SIX), is_nan(x))


class GeluUnit(DataflowUnit):
    """gelu(x) = x Phi(x): ``y = gelu(x)`` of ``tb/models/vector.py``, bit for bit, one element per
    cycle.

    The model's steps, each FP32 one an :class:`FP32Adder` or :class:`FP32Multiplier`:
    u = 2 x + 12; the row i = clip(trunc(u), 0, 23) (an integer stage that also selects the centre);
    t = x - centre_i; Phi by Horner in t, p = c6, then p = p t + c_k for k = 5 .. 0, each
    coefficient selected from the delayed i just before its addition; y = x p. The selects come
    last: x >= 6 -> x, x < -6 -> -0, NaN -> ``0x7FC00000``.

    Ports: ``x`` (FP32 pattern), ``en`` (clock enable), ``y`` (FP32 pattern).
    Latency: ``latency`` cycles with ``en`` high (1 + 8 multiplier + 8 adder latencies: 49 at the
    default 3 and 3). An ``x`` presented in a cycle with ``en`` high gives ``y`` after exactly
    ``latency`` enabled cycles. Throughput: one result per cycle.
    Back-pressure: ``en`` is a clock enable; ``en`` low freezes every register (``y`` holds) and
    ignores ``x``. Errors: none (IEEE special values are results). ``ValueError`` for an
    unsupported ``fadd_latency`` or ``fmul_latency`` (1 .. 4).
    """

    @staticmethod
    def build(df: Dataflow, x: Node) -> Node:
        c = df.const
        u = df.add(df.mul(x, c(TWO), "x2"), c(TWELVE), "u")
        i_now = df.comb(interval, u, name="i_comb")
        i = df.reg(lambda v: v, i_now, name="i")
        centre = df.reg(lambda v: lookup(GELU_CENTRES, v), i_now, name="centre")
        t = df.sub(x, centre, "t")
        p = df.reg(lambda v: lookup([row[GELU_DEG] for row in GELU_TABLE], v), i, name="c6", at=t.ready)
        for k in range(GELU_DEG - 1, -1, -1):
            q = df.mul(p, t, f"horner{k}_m")
            coef = df.reg(lambda v, k=k: lookup([row[k] for row in GELU_TABLE], v), i, name=f"c{k}",
                          at=q.ready)
            p = df.add(q, coef, f"horner{k}")
        y = df.mul(x, p, "xp")
        special = df.reg(special_cases, x, name="special")

        def select(y, s, x):
            return Mux(s[2], CANONICAL_NAN, Mux(s[1], NEG_ZERO, Mux(s[0], x, y)))
        return df.comb(select, y, special, x, name="y")
