"""``python -m tessera.tb.formal [--quick] [NAME ...]`` (``make formal``): prove the formal properties
of :data:`tessera.tb.formal.PROPERTIES` (all, the quick ones, or those named), one line each; exit 1
unless every one passes. Work directories under ``build/formal/``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tessera.tb.formal import PROPERTIES, prove


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m tessera.tb.formal", description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help=f"properties to prove (default: all): {', '.join(PROPERTIES)}")
    p.add_argument("--quick", action="store_true", help="only those make test runs too")
    p.add_argument("--workdir", default="build/formal", help="work directory (default: build/formal)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in PROPERTIES]
    if unknown:
        p.error(f"unknown property {unknown[0]!r}; allowed: {', '.join(PROPERTIES)}")
    props = [PROPERTIES[n] for n in args.names] or [q for q in PROPERTIES.values()
                                                     if q.quick or not args.quick]
    failed = 0
    for prop in props:
        r = prove(prop, Path(args.workdir))
        kind = ("proven (k-induction)" if prop.mode == "prove"
                else f"bounded: every input sequence of {r['depth']} cycles")
        print(f"{prop.name}: {r['status']} in {r['seconds']} s, {kind}; {prop.what}", flush=True)
        if prop.mode != "prove":
            print(f"  not proven unbounded: {prop.why}")
        if r["status"] != "PASS":
            failed += 1
            print("  " + r["log"].replace("\n", "\n  "))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
