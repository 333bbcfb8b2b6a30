"""``tessera cache``: the build cache under ``build/`` (``$TESSERA_BUILD``): list it, prune it.

    tessera cache list                      kind, name, size, last use of every entry; total and bound
    tessera cache prune [--max-size SIZE]   remove least recently used entries down to SIZE

The entries, what "last used" means, what is never removed and the bound (``$TESSERA_CACHE_MAX``)
are :mod:`tessera.tools.build_cache`'s; docs/simulation.md, "Build cache, run directories and disk".
"""

from __future__ import annotations

import time


def register(sub):
    p = sub.add_parser("cache", help="list or prune the build cache (Verilator builds, exported Verilog)",
                       description="The build cache under build/ ($TESSERA_BUILD): cocotb Verilator builds "
                                   "(build/sim), native fabric libraries (build/native) and exported Verilog "
                                   "(build/verilog-cache). It is pruned to $TESSERA_CACHE_MAX (default "
                                   "2G) after every new build, least recently used first.")
    what = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = what.add_parser("list", help="every entry: kind, name, size, last used; the total against the bound",
                         description="Every entry of the build cache, least recently used first.")
    ls.set_defaults(func=run_list)
    pr = what.add_parser("prune", help="remove least recently used entries down to a size",
                         description="Remove least recently used entries until the cache holds at most "
                                     "--max-size. Entries used in the last 10 minutes and builds or runs "
                                     "in progress are kept; finished cocotb builds lose their object files "
                                     "first.")
    pr.add_argument("--max-size", default=None, metavar="SIZE",
                    help="bytes, or with a K, M, G or T suffix (powers of 1024): 500M, 10G; 0 removes every "
                         "entry not in use (default: $TESSERA_CACHE_MAX, else 2G)")
    pr.set_defaults(func=run_prune)


def _when(t: float) -> str:
    age = time.time() - t
    if age < 60:
        ago = "just now"
    elif age < 3600:
        ago = f"{age / 60:.0f} min ago"
    elif age < 2 * 86400:
        ago = f"{age / 3600:.0f} h ago"
    else:
        ago = f"{age / 86400:.0f} days ago"
    return f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(t))} ({ago})"


def _bound():
    from tessera.tools import build_cache as bc

    return bc.default_max_bytes()


def run_list(args) -> int:
    from tessera.tools import build_cache as bc

    bound = _bound()
    found = bc.entries()
    total = sum(e.bytes for e in found)
    print(f"build cache {bc.BUILD} (least recently used first)")
    if found:
        w = max(len(e.name) for e in found)
        print(f"{'kind':<8} {'name':<{w}} {'size':>7}  last used")
        for e in found:
            print(f"{e.kind:<8} {e.name:<{w}} {bc.format_size(e.bytes):>7}  {_when(e.last_used)}")
    else:
        print("(empty)")
    print(f"total {bc.format_size(total)} in {len(found)} entries; bound {bc.format_size(bound)} "
          f"(${bc.MAX_ENV} or {bc.DEFAULT_MAX}){': over it' if total > bound else ''}")
    return 0


def run_prune(args) -> int:
    from tessera.tools import build_cache as bc

    limit = bc.parse_size(args.max_size, "--max-size") if args.max_size is not None else _bound()
    r = bc.prune(limit)
    if r.trimmed:
        print(f"trimmed the object files of finished cocotb builds: {bc.format_size(r.trimmed)}")
    for e in r.removed:
        print(f"removed {e.kind:<8} {e.name}  {bc.format_size(e.bytes)}")
    print(f"freed {bc.format_size(r.freed)} ({r.freed:,} bytes); {bc.format_size(r.total)} left, "
          f"bound {bc.format_size(limit)}")
    if r.total > limit:
        print(f"kept {len(r.busy)} entries in use or used in the last {bc.RECENT_S / 60:.0f} minutes: "
              + ", ".join(e.name for e in r.busy[:6]) + (", ..." if len(r.busy) > 6 else ""))
    return 0
