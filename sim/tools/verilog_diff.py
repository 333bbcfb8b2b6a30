"""Are two Verilog exports the same netlist up to the names of their nets?

``python -m tessera.tools.verilog_diff OLD_DIR NEW_DIR`` compares every ``.v`` file of OLD_DIR with
the file of the same name in NEW_DIR (as ``tessera verilog --block all`` writes them) and prints,
per file, ``same (up to N renamed identifiers)`` or the first difference; exit status 1 if any
differs. Used to show that a refactor kept the hardware (docs/results.md, "Code architecture").

Both texts are tokenised (attributes and comments dropped). Every token that is not an identifier
must be equal, in order; identifiers may differ, but only by a one-to-one renaming applied
consistently through the file. Declarations (``input``/``output``/``wire``/``reg``) are compared
as multisets after the renaming, because Yosys writes them sorted by name. Limits: a module whose
ports are listed in another order is reported as different (its header tokens do not align).
"""

from __future__ import annotations

import collections
import pathlib
import re
import sys

__all__ = ["equivalent", "main"]

TOK = re.compile(r"\\\S+|[A-Za-z_$][A-Za-z0-9_$]*|\d+'[sS]?[bBhHdD][0-9a-fA-FxXzZ_?]+|\d+|\S")
KEYWORDS = set("""
    module endmodule input output inout wire reg assign always begin end if else case casez endcase
    default posedge negedge or and not initial signed integer parameter localparam function
    endfunction generate endgenerate for
""".split())
def split(text):
    text = re.sub(r"\(\*.*?\*\)", "", text, flags=re.S)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    decl, body = [], []
    for stmt in re.split(r"(?<=;)|(?<=\bbegin\b)|(?<=\bend\b)", text):
        toks = TOK.findall(stmt)
        if toks and toks[0] in ("input", "output", "wire", "reg", "inout"):
            decl.append(toks)
        else:
            body.extend(toks)
    return decl, body
def is_id(t):
    return (t[0].isalpha() or t[0] in "_$\\") and t not in KEYWORDS
def equivalent(a: str, b: str) -> str:
    """``same (up to N renamed identifiers)`` or the first difference between texts ``a`` and ``b``."""
    (da, ba), (db, bb) = split(a), split(b)
    if len(ba) != len(bb):
        return f"body token counts differ: {len(ba)} vs {len(bb)}"
    fwd, back = {}, {}
    for x, y in zip(ba, bb, strict=True):
        if is_id(x) and is_id(y):
            if fwd.setdefault(x, y) != y or back.setdefault(y, x) != x:
                return f"inconsistent renaming: {x} -> {fwd[x]} / {y} <- {back[y]}"
        elif x != y:
            return f"token differs: {x!r} vs {y!r}"

    def ren(toks):
        return tuple(fwd.get(t, t) if is_id(t) else t for t in toks)

    ca = collections.Counter(ren(d) for d in da)
    cb = collections.Counter(tuple(d) for d in db)
    if ca != cb:
        diff = list((ca - cb).items())[:3]
        return f"declarations differ after renaming: {diff}"
    renamed = sum(1 for k, v in fwd.items() if k != v)
    return f"same (up to {renamed} renamed identifiers)"


def main(argv=None) -> int:
    old, new = (pathlib.Path(p) for p in (argv or sys.argv[1:]))
    bad = 0
    for f in sorted(old.glob("*.v")):
        g = new / f.name
        result = equivalent(f.read_text(), g.read_text()) if g.exists() else "missing in the new export"
        bad += not result.startswith("same")
        print(f"{f.name}: {result}")
    print(f"{bad} of {len(list(old.glob('*.v')))} files differ")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
