"""Assembler and disassembler of the tile ISA (docs/isa.md).

Text form, one instruction per line; ``#`` or ``;`` starts a comment; operands are separated by
commas and/or spaces; numbers are decimal, ``0x`` hex or ``0b`` binary (``_`` allowed)::

    load    sp=0x0000, mem=0x10000, rows=16, bytes=32, stride=1024
    load    sp=0x0200, mem=0x20000, rows=16, bytes=32, stride=1024, mode=send, x=0..3, y=0
    load    acc=0x0000, mem=0x30000, rows=8, bytes=32, stride=256       # C into the accumulators
    barrier loads
    matmul  bf16, m=8, n=8, k=16, a=0x0000, b=0x0200, acc=0x0000, accumulate
    barrier matmuls
    store   acc=0x0000, mem=0x40000, rows=8, bytes=32, stride=256
    sync    x=0..1, y=0                                                 # cross-tile barrier
    vector  add, x=0x0000, d=0x8000, rows=8, cols=8, yrow=0x0400, act=relu, fmt=bf16t
    barrier vectors
    end
    .word   0x0000000000000000000000000000000f                          # a raw word

``stride`` defaults to ``bytes`` rounded up to a word. ``barrier`` takes any of ``loads``,
``stores``, ``matmuls``, ``vectors`` (or ``all``). ``sync`` takes a group like a SEND's
(``x=X0..X1``, ``y=Y0..Y1``; ``x=2`` means ``2..2``); an omitted ``x=`` / ``y=`` is the whole
width / height of the mesh, so a plain ``sync`` is the whole mesh. ``vector OP, x=, d=, rows=,
cols=`` takes one second operand (``y=`` a region like x, ``yrow=`` a row vector, ``ycol=`` a
column vector, ``imm=`` a decimal number rounded to FP32 (an INT32 for ``iadd``), ``immbits=``
the raw 32 bits; none for ``pass``), and optionally ``act=``, ``red=``, ``fmt=`` and the flag
``itof`` (docs/isa.md, "VECTOR"). :func:`assemble` validates every instruction against a
FabricConfig with the same rules as the hardware (:func:`tessera.runtime.isa.check`) and raises
``ValueError("line N: ...")``; :func:`disassemble` prints the canonical text, which assembles
back to the same words.
"""

from __future__ import annotations

import math
import re
import struct
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from tessera.rtl.tile.isa import (
    WORD_BITS,
    Dtype,
    ErrorCode,
    Mode,
    Opcode,
    Space,
    VOp,
    YMode,
)
from tessera.runtime import isa

__all__ = ["Program", "assemble", "disassemble", "disassemble_word", "encode", "read_words", "write_words"]

_XFER_KEYS = {"sp", "acc", "mem", "rows", "bytes", "stride", "mode", "x", "y"}
_MATMUL_KEYS = {"m", "n", "k", "a", "b", "acc"}
_BARRIER_FLAGS = ("loads", "stores", "matmuls", "vectors")
# VECTOR's second operand: operand name -> ymode
_Y_KEYS = {"y": YMode.REGION, "yrow": YMode.ROW, "ycol": YMode.COL, "imm": YMode.IMM, "immbits": YMode.IMM}
_VECTOR_KEYS = {"x", "d", "rows", "cols", "act", "red", "fmt"} | set(_Y_KEYS)
_VECTOR_ENUMS = (("act", isa.ACTS), ("red", isa.REDS), ("fmt", isa.VFMTS))


def encode(opcode: int, **values) -> int:
    """Pack ``values`` into one word of ``opcode``'s format; ``ValueError`` if a value does not fit."""
    opcode = getattr(opcode, "value", opcode)
    fields = {name: (lo, w) for name, lo, w in isa.FIELDS[opcode]}
    word = opcode
    for name, value in values.items():
        if name not in fields:
            raise ValueError(f"unknown field {name!r}")
        lo, w = fields[name]
        if not 0 <= int(value) < (1 << w):
            raise ValueError(f"{name} = {value} does not fit in {w} bits")
        word |= int(value) << lo
    return word


def _num(text: str, what: str) -> int:
    try:
        return int(text.replace("_", ""), 0)
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a number") from None


def _range(text: str, what: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("..")
    a = _num(lo, what)
    return (a, _num(hi, what) if sep else a)


def _pow2(e: int) -> Fraction:
    return Fraction(2) ** e


def _f32_round(q: Fraction) -> int | None:
    """The FP32 bit pattern of ``|q|`` rounded to nearest, ties to even (subnormals kept); None if
    it overflows to infinity."""
    q = abs(q)
    if q == 0:
        return 0
    e = q.numerator.bit_length() - q.denominator.bit_length()      # 2^e <= q < 2^(e+1), or e one too big
    if q < _pow2(e):
        e -= 1
    e = max(e, -126)                                                # below: subnormal, fixed exponent
    mant = round(q / _pow2(e - 23))                                 # Fraction.__round__: ties to even
    if mant == 1 << 24:
        e, mant = e + 1, 1 << 23
    if e > 127:
        return None
    return mant if mant < (1 << 23) else ((e + 127) << 23) | (mant - (1 << 23))


def _f32_bits(text: str) -> int:
    """``imm=`` of a floating-point VECTOR: a decimal number (or ``inf``, ``nan``, with a sign)
    rounded once, exactly, to the nearest FP32 (ties to even)."""
    t = text.replace("_", "").lower()
    sign = int(t.startswith("-")) << 31
    body = t[1:] if t[:1] in "+-" else t
    if body in ("inf", "infinity"):
        return sign | 0x7F800000
    if body == "nan":
        return sign | 0x7FC00000
    try:
        value = Decimal(body)
    except InvalidOperation:
        value = None
    if value is None or not value.is_finite() or body[:1] not in "0123456789.":
        raise ValueError(f"imm: {text!r} is not a decimal number (immbits= takes a bit pattern)")
    # (the decimal exponent first: 1e999999999 must not become a billion-digit integer)
    if value and value.adjusted() > 38:
        bits = None                                     # >= 1e39: beyond the largest FP32
    elif value and value.adjusted() < -50:
        bits = 0                                        # < 1e-50: below half the smallest subnormal
    else:
        bits = _f32_round(Fraction(value))
    if bits is None:
        raise ValueError(f"imm = {text} overflows FP32 (largest finite 3.4028235e+38); write inf for"
                         " infinity")
    return sign | bits


def _f32_text(bits: int) -> str:
    """The shortest decimal that ``imm=`` rounds back to the FP32 ``bits`` (``nan`` for any NaN)."""
    (value,) = struct.unpack("<f", bits.to_bytes(4, "little"))
    if math.isnan(value) or math.isinf(value) or value == 0:
        return str(value)
    for digits in range(1, 10):                                     # 9 significant digits always do
        text = f"{value:.{digits}g}"
        if _f32_round(Fraction(text)) == bits & 0x7FFFFFFF:
            if 1e-4 <= abs(value) < 1e16:                           # positional, as Python prints floats
                text = format(Decimal(text), "f")
                text += "" if "." in text else ".0"
            return text
    raise AssertionError(f"no decimal for FP32 {bits:#010x}")


def _imm(text: str, op: str) -> int:
    """``imm=``: an INT32 for ``iadd`` (-2^31 .. 2^32 - 1, as 32 bits), else an FP32 value."""
    if op != "iadd":
        return _f32_bits(text)
    value = _num(text, "imm")
    if not -(1 << 31) <= value < (1 << 32):
        raise ValueError(f"imm = {text} is out of range for iadd; allowed: {-(1 << 31)}..{(1 << 32) - 1}")
    return value & 0xFFFFFFFF


def _assemble_vector(keys: dict, flags: list, need) -> int:
    ops = [f for f in flags if f in isa.VOPS]
    others = [f for f in flags if f not in isa.VOPS and f != "itof"]
    if others:
        raise ValueError(f"vector: unexpected operand {others[0]!r}")
    if len(ops) != 1:
        raise ValueError(f"vector: give exactly one op ({', '.join(isa.VOPS)})")
    op = ops[0]
    v = {"op": isa.VOPS[op], "x_addr": need("x"), "d_addr": need("d"), "rows": need("rows"),
         "cols": need("cols"), "itof": int("itof" in flags)}
    for key, table in _VECTOR_ENUMS:
        if key in keys:
            name = keys[key].lower()
            if name not in table:
                raise ValueError(f"vector: {key}={keys[key]}; allowed: {', '.join(table)}")
            v[key] = table[name]
    given = [k for k in _Y_KEYS if k in keys]
    if len(given) > 1:
        raise ValueError(f"vector: give at most one of {', '.join(k + '=' for k in _Y_KEYS)}")
    if not given and op != "pass":
        raise ValueError(f"vector: {op} needs a second operand: y=, yrow=, ycol=, imm= or immbits=")
    if given:
        key = given[0]
        v["ymode"] = _Y_KEYS[key].value
        v["y"] = _imm(keys[key], op) if key == "imm" else _num(keys[key], key)
        if not 0 <= v["y"] < (1 << 32):
            raise ValueError(f"{key} = {keys[key]} does not fit in 32 bits")
    return encode(Opcode.VECTOR, **v)


def _disassemble_vector(f: dict) -> tuple[str, str] | None:
    """(canonical text, comment) of a VECTOR word, None if a field has no name."""
    names = {}
    for key, table in (("op", isa.VOPS),) + _VECTOR_ENUMS:
        inverse = {v: k for k, v in table.items()}
        if f[key] not in inverse:
            return None
        names[key] = inverse[f[key]]
    parts = [f"vector  {names['op']}", f"x={f['x_addr']:#06x}", f"d={f['d_addr']:#06x}",
             f"rows={f['rows']}", f"cols={f['cols']}"]
    comment = ""
    ymode, y = YMode(f["ymode"]), f["y"]
    if f["op"] != VOp.PASS.value or ymode != YMode.REGION or y:
        key = {m: k for k, m in _Y_KEYS.items() if k != "imm"}[ymode]
        parts.append(f"{key}={y:#010x}" if ymode == YMode.IMM else f"{key}={y:#06x}")
        if ymode == YMode.IMM:
            comment = str(y - ((y >> 31) << 32)) if f["op"] == VOp.IADD.value else _f32_text(y)
    parts += [f"{key}={names[key]}" for key, _ in _VECTOR_ENUMS if f[key]]
    if f["itof"]:
        parts.append("itof")
    return ", ".join(parts), comment


def _operands(rest: str) -> tuple[dict, list]:
    keys, flags = {}, []
    for tok in (t for t in re.split(r"[,\s]+", rest.strip()) if t):
        if "=" in tok:
            k, _, v = tok.partition("=")
            k = k.lower()
            if k in keys:
                raise ValueError(f"operand {k!r} given twice")
            if not v:
                raise ValueError(f"operand {k!r} has no value")
            keys[k] = v
        else:
            flags.append(tok.lower())
    return keys, flags


def _assemble_line(mnem: str, rest: str, cfg) -> int:
    keys, flags = _operands(rest)
    wb = isa.IsaParams.of(cfg).word_bytes

    def unknown(allowed):
        bad = sorted(set(keys) - set(allowed))
        if bad:
            raise ValueError(f"{mnem}: unknown operand {bad[0]!r}; allowed: {', '.join(sorted(allowed))}")

    def need(k):
        if k not in keys:
            raise ValueError(f"{mnem}: missing operand {k}=")
        return _num(keys[k], k)

    if mnem in ("load", "store"):
        unknown(_XFER_KEYS if mnem == "load" else _XFER_KEYS - {"mode", "x", "y", "sp"})
        if flags:
            raise ValueError(f"{mnem}: unexpected operand {flags[0]!r}")
        if ("sp" in keys) == ("acc" in keys):
            raise ValueError(f"{mnem}: give exactly one of sp= or acc=")
        space = "acc" if "acc" in keys else "sp"
        v = {"space": isa.SPACES[space], "local_addr": need(space), "mem_addr": need("mem"),
             "rows": need("rows"), "row_bytes": need("bytes")}
        dense = isa.pitch(v["row_bytes"], wb)
        v["stride"] = _num(keys["stride"], "stride") if "stride" in keys else dense
        mode = keys.get("mode", "local").lower()
        if mode not in isa.MODES:
            raise ValueError(f"{mnem}: mode={mode}; allowed: {', '.join(isa.MODES)}")
        v["mode"] = isa.MODES[mode]
        if mode == "local":
            if "x" in keys or "y" in keys:
                raise ValueError(f"{mnem}: x= and y= name a multicast group; they need mode=send or recv")
        else:
            if "x" not in keys or "y" not in keys:
                raise ValueError(f"{mnem}: mode={mode} needs the group: x=X0..X1 and y=Y0..Y1")
            v["x0"], v["x1"] = _range(keys["x"], "x")
            v["y0"], v["y1"] = _range(keys["y"], "y")
        return encode(Opcode.LOAD if mnem == "load" else Opcode.STORE, **v)
    if mnem == "matmul":
        unknown(_MATMUL_KEYS)
        dtypes = [f for f in flags if f in isa.DTYPES]
        others = [f for f in flags if f not in isa.DTYPES and f != "accumulate"]
        if others:
            raise ValueError(f"matmul: unexpected operand {others[0]!r}")
        if len(dtypes) != 1:
            raise ValueError(f"matmul: give exactly one dtype ({', '.join(isa.DTYPES)})")
        return encode(Opcode.MATMUL, dtype=isa.DTYPES[dtypes[0]], accumulate=int("accumulate" in flags),
                      m=need("m"), n=need("n"), k=need("k"), a_addr=need("a"), b_addr=need("b"),
                      acc_addr=need("acc"))
    if mnem == "barrier":
        if keys:
            raise ValueError(f"barrier: unexpected operand {next(iter(keys))}=")
        for f in flags:
            if f not in _BARRIER_FLAGS and f != "all":
                raise ValueError(f"barrier: unknown operand {f!r}; allowed: {', '.join(_BARRIER_FLAGS)}, all")
        chosen = _BARRIER_FLAGS if "all" in flags else flags
        return encode(Opcode.BARRIER, **{f: 1 for f in chosen})
    if mnem == "vector":
        unknown(_VECTOR_KEYS)
        return _assemble_vector(keys, flags, need)
    if mnem == "sync":
        unknown({"x", "y"})
        if flags:
            raise ValueError(f"sync: unexpected operand {flags[0]!r}")
        p = isa.IsaParams.of(cfg)
        x0, x1 = _range(keys["x"], "x") if "x" in keys else (0, p.mesh_width - 1)
        y0, y1 = _range(keys["y"], "y") if "y" in keys else (0, p.mesh_height - 1)
        return encode(Opcode.SYNC, x0=x0, x1=x1, y0=y0, y1=y1)
    if mnem == "end":
        if keys or flags:
            raise ValueError("end takes no operands")
        return encode(Opcode.END)
    if mnem == ".word":
        if keys or len(flags) != 1:
            raise ValueError(".word takes one number")
        w = _num(flags[0], ".word")
        if not 0 <= w < (1 << WORD_BITS):
            raise ValueError(f".word {flags[0]} does not fit in {WORD_BITS} bits")
        return w
    raise ValueError(f"unknown mnemonic {mnem!r}; allowed: load, store, matmul, vector, barrier, sync, end,"
                     " .word")


def assemble(text: str, cfg=None, *, validate: bool = True) -> list[int]:
    """Assembly text -> instruction words. ``ValueError("line N: ...")`` on the first bad line.

    With ``validate`` every word is checked against ``cfg`` (a FabricConfig; None: the default
    preset) exactly as the sequencer checks it; ``validate=False`` lets malformed words through
    (to test the hardware's error handling).
    """
    words = []
    for lineno, line in enumerate(text.splitlines(), 1):
        code = re.split(r"[#;]", line, maxsplit=1)[0].strip()
        if not code:
            continue
        mnem, _, rest = code.partition(" ")
        try:
            word = _assemble_line(mnem.lower(), rest, cfg)
            if validate:
                err, reason = isa.check(word, cfg)
                if err != ErrorCode.NONE:
                    raise ValueError(f"{mnem.lower()}: {err.name}: {reason}")
        except ValueError as e:
            raise ValueError(f"line {lineno}: {e}  [{code}]") from None
        words.append(word)
    return words


def disassemble_word(word: int) -> str:
    """One word -> canonical text (``.word 0x...`` when it is not a well-formed instruction)."""
    raw = f".word   {word:#034x}"
    comment = ""
    f = isa.decode(word)
    op = f["opcode"]
    if op not in isa.FIELDS or word & isa.RESERVED[op]:
        return raw
    if op in (Opcode.LOAD.value, Opcode.STORE.value):
        if f["mode"] not in isa.MODES.values():
            return raw
        space = "acc" if f["space"] == Space.ACC.value else "sp"
        text = (f"{Opcode(op).name.lower():<7} {space}={f['local_addr']:#06x}, mem={f['mem_addr']:#010x}, "
                f"rows={f['rows']}, bytes={f['row_bytes']}, stride={f['stride']}")
        if f["mode"] != Mode.LOCAL.value:
            mode = Mode(f["mode"]).name.lower()
            text += f", mode={mode}, x={f['x0']}..{f['x1']}, y={f['y0']}..{f['y1']}"
    elif op == Opcode.MATMUL.value:
        if f["dtype"] not in isa.DTYPES.values():
            return raw
        dt = Dtype(f["dtype"]).name.lower()
        text = (f"matmul  {dt}, m={f['m']}, n={f['n']}, k={f['k']}, a={f['a_addr']:#06x}, "
                f"b={f['b_addr']:#06x}, acc={f['acc_addr']:#06x}")
        if f["accumulate"]:
            text += ", accumulate"
    elif op == Opcode.BARRIER.value:
        chosen = [n for n in _BARRIER_FLAGS if f[n]]
        text = ("barrier " + " ".join(chosen)).rstrip()
    elif op == Opcode.SYNC.value:
        text = f"sync    x={f['x0']}..{f['x1']}, y={f['y0']}..{f['y1']}"
    elif op == Opcode.VECTOR.value:
        vector = _disassemble_vector(f)
        if vector is None:
            return raw
        text, comment = vector
    else:
        text = "end"
    # Anything that does not re-encode exactly (a STORE with a group, say) stays a raw word.
    try:
        if _assemble_line(text.split()[0], text.partition(" ")[2], None) != word:
            return raw
    except ValueError:
        return raw
    return f"{text}  # {comment}" if comment else text


def disassemble(words, cfg=None, *, annotate: bool = True) -> str:
    """Words -> assembly text; with ``annotate`` a comment names the error of a malformed word."""
    lines = []
    for i, w in enumerate(words):
        text = disassemble_word(w)
        if annotate:
            err, reason = isa.check(w, cfg)
            if err != ErrorCode.NONE:
                text = f"{text:<60} # [{i}] {err.name}: {reason}"
        lines.append(text)
    return "\n".join(lines) + ("\n" if lines else "")


def read_words(path) -> list[int]:
    """A program file: ``.bin`` (16 little-endian bytes per word) or text hex, one word a line."""
    from pathlib import Path

    p = Path(path)
    if p.suffix == ".bin":
        raw = p.read_bytes()
        if len(raw) % (WORD_BITS // 8):
            raise ValueError(f"{path}: size {len(raw)} is not a multiple of {WORD_BITS // 8} bytes")
        n = WORD_BITS // 8
        return [int.from_bytes(raw[i:i + n], "little") for i in range(0, len(raw), n)]
    words = []
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        t = line.split("#", 1)[0].strip()
        if t:
            try:
                words.append(int(t, 16))
            except ValueError:
                raise ValueError(f"{path}: line {lineno}: {t!r} is not a hex word") from None
    return words


def write_words(path, words) -> None:
    from pathlib import Path

    p = Path(path)
    if p.suffix == ".bin":
        p.write_bytes(b"".join(w.to_bytes(WORD_BITS // 8, "little") for w in words))
    else:
        p.write_text("".join(f"{w:032x}\n" for w in words))


class Program:
    """Build a tile program in Python, checked instruction by instruction against ``cfg``.

    ::

        p = Program(cfg)
        p.load(sp=0x0000, mem=0x10000, rows=16, bytes=32, stride=32)
        p.barrier("loads")
        p.matmul("bf16", m=16, n=16, k=16, a=0x0000, b=0x8000, acc=0x0000, accumulate=True)
        p.barrier("matmuls")
        p.store(acc=0x0000, mem=0x30000, rows=16, bytes=64)
        p.vector("add", x=0x0000, d=0x4000, rows=16, cols=16, yrow=0x3000, act="relu", fmt="bf16t")
        p.sync(x=(0, 1))                    # wait for tiles x = 0..1 of every row
        p.end()
        p.words, p.text(), p.hazards()

    Keyword names are those of the assembly syntax; a bad instruction raises ``ValueError``
    naming it (``instruction 3: ...``) when it is added.
    """

    def __init__(self, cfg=None):
        self.cfg = cfg
        self.words: list[int] = []

    def _add(self, line: str) -> Program:
        try:
            (word,) = assemble(line, self.cfg)
        except ValueError as e:
            raise ValueError(f"instruction {len(self.words)}: {str(e).removeprefix('line 1: ')}") from None
        self.words.append(word)
        return self

    @staticmethod
    def _ops(**kw) -> str:
        return ", ".join(f"{k}={v}" for k, v in kw.items() if v is not None)

    def load(self, *, mem, rows, bytes, sp=None, acc=None, stride=None, mode=None, x=None, y=None):
        def rng(v):
            return None if v is None else (f"{v[0]}..{v[1]}" if isinstance(v, tuple) else v)
        return self._add("load " + self._ops(sp=sp, acc=acc, mem=mem, rows=rows, bytes=bytes, stride=stride,
                                             mode=mode, x=rng(x), y=rng(y)))

    def store(self, *, acc, mem, rows, bytes, stride=None):
        return self._add("store " + self._ops(acc=acc, mem=mem, rows=rows, bytes=bytes, stride=stride))

    def matmul(self, dtype, *, m, n, k, a, b, acc, accumulate=False):
        return self._add(f"matmul {dtype}, " + self._ops(m=m, n=n, k=k, a=a, b=b, acc=acc)
                         + (", accumulate" if accumulate else ""))

    def barrier(self, *classes):
        return self._add("barrier " + " ".join(classes))

    def vector(self, op, *, x, d, rows, cols, y=None, yrow=None, ycol=None, imm=None, immbits=None,
               act=None, red=None, fmt="fp32", itof=False):
        """A VECTOR (docs/isa.md): ``op`` on the ``rows`` x ``cols`` region at ``x``, result at ``d``;
        at most one second operand (``y`` region, ``yrow``, ``ycol``, ``imm`` a number (a float is
        taken at its exact value and rounded once to FP32; an int for ``iadd``) or ``immbits``)."""
        if isinstance(imm, float):
            imm = str(imm) if math.isinf(imm) or math.isnan(imm) else format(Decimal(imm), "e")
        line = f"vector {op}, " + self._ops(x=x, d=d, rows=rows, cols=cols, y=y, yrow=yrow, ycol=ycol,
                                            imm=imm, immbits=immbits, act=act, red=red, fmt=fmt)
        return self._add(line + (", itof" if itof else ""))

    def sync(self, *, x=None, y=None):
        """A cross-tile barrier with the tiles ``x`` = (x0, x1) x ``y`` = (y0, y1) (an int: that
        one column / row); either defaults to the whole mesh."""
        def rng(v):
            return None if v is None else (f"{v[0]}..{v[1]}" if isinstance(v, (tuple, list)) else v)
        return self._add("sync " + self._ops(x=rng(x), y=rng(y)))

    def end(self):
        return self._add("end")

    def text(self) -> str:
        return disassemble(self.words, self.cfg)

    def hazards(self) -> list[tuple[int, str]]:
        return isa.hazards(self.words, self.cfg)
