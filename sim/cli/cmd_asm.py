"""``tessera asm`` / ``tessera disasm``: the tile ISA assembler and disassembler (docs/isa.md)."""

from __future__ import annotations

import sys
from pathlib import Path


def register(sub):
    p = sub.add_parser("asm", help="assemble a tile program (docs/isa.md) into instruction words",
                       description="Assemble tile ISA text into 128-bit instruction words, checked "
                                   "against a preset as the hardware checks them. Output: hex text (one word "
                                   "a line) or, for a .bin file, 16 little-endian bytes per word.")
    p.add_argument("source", help="assembly file ('-' for stdin)")
    p.add_argument("-o", "--output", help="output file: .bin, else hex text (default: hex on stdout)")
    p.add_argument("--preset", default="default", help="configuration the program is checked against")
    p.add_argument("--no-check", action="store_true",
                   help="do not refuse instructions the hardware would reject (to build error tests)")
    p.add_argument("--strict", action="store_true",
                   help="refuse a program with ordering hazards (missing BARRIERs, docs/isa.md); "
                        "without it they are printed as warnings")
    p.set_defaults(func=run_asm)

    d = sub.add_parser("disasm", help="disassemble tile instruction words into assembly text",
                       description="Disassemble a program (.hex text or .bin) into assembly text; words the "
                                   "hardware would reject are annotated with their error code.")
    d.add_argument("program", help="program file: .bin, or hex text one word a line")
    d.add_argument("--preset", default="default", help="configuration the words are checked against")
    d.set_defaults(func=run_disasm)


def _cfg(name):
    from tessera.rtl.config import preset

    try:
        return preset(name)
    except ValueError as e:
        raise ValueError(f"--preset: {e}") from None


def _input(path: str, what: str) -> Path:
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"{what}: {path} is a directory; name a file")
    if not p.is_file():
        raise ValueError(f"{what}: no such file {path!r}")
    return p


def run_asm(args) -> int:
    from tessera.cli.common import check_output
    from tessera.runtime.asm import assemble, write_words
    from tessera.runtime.isa import hazards

    cfg = _cfg(args.preset)
    output = check_output(args.output, "-o/--output")
    try:
        text = sys.stdin.read() if args.source == "-" else _input(args.source, "source").read_text()
    except UnicodeDecodeError:
        raise ValueError(f"source: {args.source} is not text (assembly is read as UTF-8)") from None
    try:
        words = assemble(text, cfg, validate=not args.no_check)
    except ValueError as e:
        print(f"{args.source}: {e}", file=sys.stderr)
        return 1
    found = hazards(words, cfg)
    for index, message in found:
        print(f"{args.source}: {'error' if args.strict else 'warning'}: instruction {index}: {message}",
              file=sys.stderr)
    if found and args.strict:
        return 1
    if output:
        output.parent.mkdir(parents=True, exist_ok=True)
        write_words(output, words)
        print(f"{args.output}: {len(words)} instructions")
    else:
        sys.stdout.write("".join(f"{w:032x}\n" for w in words))
    return 0


def run_disasm(args) -> int:
    from tessera.runtime.asm import disassemble, read_words

    cfg = _cfg(args.preset)
    try:
        words = read_words(_input(args.program, "program"))
    except UnicodeDecodeError:
        raise ValueError(f"program: {args.program} is not hex text (name a binary program *.bin)") from None
    except ValueError as e:
        raise ValueError(e if str(e).startswith("program:") else f"program: {e}") from None
    sys.stdout.write(disassemble(words, cfg))
    return 0
