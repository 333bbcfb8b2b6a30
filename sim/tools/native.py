"""The fabric's native simulation engine: the Verilated fabric with its memory and host in C++.

The cocotb path (``tessera.tb.fabric.run_gemm``) returns to Python on every clock edge for every
memory port and for the host; this engine does not. ``native/fabric_harness.cpp`` holds the
AXI4 memory (latency, bandwidth limit, error ranges, counters) and the AXI4-Lite host master in
C++ and is compiled by Verilator together with the fabric into one shared library, which
:class:`NativeFabric` loads with ctypes. Python still drives the run: it performs the host
sequence of :mod:`tessera.runtime.host` (:meth:`NativeFabric.run`), one C call per operation,
so only the program pushes and polls cross the boundary, never a cycle. docs/simulation.md
describes the design, its timing contract (edge for edge that of the cocotb models, so both paths
give the same cycle counts; tests/test_native.py checks it) and the build settings.

Builds are cached in ``build/native/<name>-<key>/`` (key: the Verilog, the harness source and the
build options), one build at a time per key (``<name>-<key>.lock``). Every call marks its build used
(``.last_used``, for :mod:`tessera.tools.build_cache`'s least-recently-used order); a new build
says first how long the last build of that design took (its ``build.json``), and the build cache
is pruned to its bound after it (:func:`tessera.tools.build_cache.auto_prune`).
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from tessera.tools import build_cache
from tessera.tools.toolchain import BUILD, setup_environment

HARNESS = Path(__file__).parent / "native" / "fabric_harness.cpp"

# Verilator options of the native build (docs/simulation.md: measured against the alternatives).
VERILATOR_ARGS = ["-Wno-fatal", "-Wno-lint", "-Wno-style", "-O3", "--x-assign", "fast", "--x-initial", "fast"]
CXX_OPT = "-O1"            # g++ level of the model (OPT_FAST / OPT_SLOW / OPT_GLOBAL)
HOST_TIMEOUT = 100_000     # cycles one AXI4-Lite access may take before the run fails

_PORT = re.compile(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):(\d+)\]\s*)?(\w+);", re.M)
_AXI_MEM = ("arvalid", "araddr", "arlen", "arsize", "arid", "arready", "rvalid", "rdata", "rresp", "rlast",
            "rid", "rready", "awvalid", "awaddr", "awlen", "awsize", "awid", "awready", "wvalid", "wdata",
            "wstrb", "wlast", "wready", "bvalid", "bresp", "bid", "bready")
_AXI_LITE = ("awvalid", "awaddr", "awready", "wvalid", "wdata", "wstrb", "wready", "bvalid", "bresp",
             "bready", "arvalid", "araddr", "arready", "rvalid", "rdata", "rresp", "rready")


class NativeError(RuntimeError):
    """The native engine could not be built, or a run broke the AXI4-Lite / AXI4 protocol."""


def top_ports(verilog: str, top: str) -> dict[str, int]:
    """``{port: width}`` of module ``top`` in ``verilog``."""
    start = verilog.index(f"module {top}(")
    body = verilog[start:verilog.index("endmodule", start)]
    return {m[4]: (int(m[2]) - int(m[3]) + 1) if m[2] else 1 for m in _PORT.finditer(body)}


def ports_headers(verilog: str, top: str, mem_prefixes: list[str], data_bytes: int) -> dict[str, str]:
    """The generated headers: ``top.h`` (the model's class, the memory's ports and word size) and
    ``bind_ports.h`` (``bind_ports``: the memory ports ``mem_prefixes`` and the host port ``s_axil``)."""
    ports = top_ports(verilog, top)

    def sig(name: str, optional: bool = False) -> str:
        if name not in ports:
            if optional:
                return "Sig{}"
            raise NativeError(f"{top}: no port {name} in its Verilog")
        w = ports[name]
        ref = f"top->{name}.data()" if w > 64 else f"&top->{name}"
        return f"Sig{{(void*){ref}, {w}}}"

    top_h = [f'#include "V{top}.h"', f"#define TOP_CLASS V{top}", f"#define MEM_PORTS {len(mem_prefixes)}",
             f"#define MEM_DATA_BYTES {data_bytes}"]
    lines = ["static void bind_ports(TOP_CLASS* top, std::vector<AxiPortSigs>& mem, AxiLiteSigs& host) {"]
    for p in mem_prefixes:
        fields = ", ".join(sig(f"{p}_{n}", optional=n in ("arsize", "awsize", "wstrb")) for n in _AXI_MEM)
        lines.append(f"    mem.push_back(AxiPortSigs{{{fields}}});")
    lines.append(f"    host = AxiLiteSigs{{{', '.join(sig(f's_axil_{n}') for n in _AXI_LITE)}}};")
    lines.append("}")
    return {"top.h": "\n".join(top_h) + "\n", "bind_ports.h": "\n".join(lines) + "\n"}


_HIER = re.compile(r"^(module (\w+)\([^;]*\);\n)  /\*verilator hier_block\*/\n", re.M)


def keep_hier_blocks(verilog: str, keep=()) -> str:
    """``verilog`` with the ``hier_block`` pragma removed from every module not in ``keep``."""
    return _HIER.sub(lambda m: m[0] if m[2] in keep else m[1], verilog)


def build(verilog: str, top: str, mem_prefixes: list[str], data_bytes: int, *, hier_blocks=(),
          threads: int = 1, trace: bool = False, cxx_opt: str = CXX_OPT, extra_args=(), log=print,
          probe: bool = False) -> Path | None:
    """Build (or reuse) the native library of design ``top``; return the path of its ``.so``.

    ``hier_blocks``: the modules Verilator compiles once as hierarchical blocks (the others are
    inlined; none: a flat model); ``threads``: Verilator ``--threads``; ``extra_args``: more Verilator
    options (later ones override earlier ones); ``probe``: build nothing, return None when the
    library is not built yet. See docs/simulation.md for what each costs and buys."""
    verilog = keep_hier_blocks(verilog, hier_blocks)
    headers = ports_headers(verilog, top, mem_prefixes, data_bytes)
    # --threads-dpi all: the hierarchical blocks are called through DPI; without it Verilator runs
    # every such call on one thread.
    args = [*VERILATOR_ARGS] + (["--threads-dpi", "all"] if threads > 1 else [])
    args += ["--hierarchical", "-Wno-UNOPTFLAT"] if hier_blocks else []
    args += (["--threads", str(threads)] if threads > 1 else []) + (["--trace"] if trace else [])
    args += list(extra_args)
    key = hashlib.sha256("\n".join([verilog, HARNESS.read_text(), *headers.values(), " ".join(args), cxx_opt,
                                    str(trace)]).encode()).hexdigest()[:16]
    out = BUILD / "native" / f"{top}-{key}"
    lib = out / f"libtessera_{top}.so"
    if probe:                            # only look: the library if it is built, else None
        return lib if lib.exists() else None
    if lib.exists():
        build_cache.touch(out)
        return lib
    out.parent.mkdir(parents=True, exist_ok=True)
    built = False
    with open(out.with_suffix(".lock"), "w") as lock:   # one build at a time (pytest-xdist workers)
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not lib.exists():
            _build(verilog, top, headers, args, cxx_opt, trace, out, lib, key, log)
            built = True
        build_cache.touch(out)
    if built:
        build_cache.auto_prune(log)
    return lib


def last_build_seconds(top: str, cxx_opt: str | None = None) -> float | None:
    """Seconds of the newest recorded native build of ``top`` (with g++ level ``cxx_opt`` if given),
    from the ``build.json`` files of ``build/native/<top>-*/``; None when there is none."""
    best = None
    for path in (BUILD / "native").glob(f"{top}-*/build.json"):
        try:
            record, mtime = json.loads(path.read_text()), path.stat().st_mtime
        except (OSError, ValueError):
            continue
        if record.get("name") == top and (cxx_opt is None or record.get("cxx_opt") == cxx_opt) \
                and (best is None or mtime > best[0]):
            best = (mtime, float(record["build_s"]))
    return None if best is None else best[1]


def _build(verilog, top, headers, args, cxx_opt, trace, out, lib, key, log):
    env = setup_environment(dict(os.environ))
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / f"{top}.v").write_text(verilog)
    for fname, text in headers.items():
        (tmp / fname).write_text(text)
    t0 = time.monotonic()
    last = last_build_seconds(top, cxx_opt)
    estimate = f"the last build of {top} took {build_cache.format_seconds(last)}" if last is not None \
        else "cached after this"
    log(f"[tessera] building the native simulation of {top}{' with waveform tracing' if trace else ''}"
        f" (Verilator, g++ {cxx_opt}; not cached; {estimate})")
    cflags = f"-fPIC -fvisibility=hidden -I{tmp}" + (" -DTESSERA_TRACE" if trace else "")
    cmd = ["verilator", "--cc", "--exe", "--build", "-j", str(os.cpu_count() or 2), *args,
           "--top-module", top, "-Mdir", str(tmp / "obj"), "-CFLAGS", cflags,
           "-LDFLAGS", "-shared -Wl,-Bsymbolic", "-o", lib.name, str(tmp / f"{top}.v"), str(HARNESS)]
    env["MAKEFLAGS"] += f" OPT_FAST={cxx_opt} OPT_SLOW={cxx_opt} OPT_GLOBAL={cxx_opt}"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    (tmp / "build.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise NativeError(f"native build of {top} failed; log {tmp / 'build.log'}:\n{proc.stderr[-4000:]}")
    shutil.move(str(tmp / "obj" / lib.name), tmp / lib.name)
    shutil.rmtree(tmp / "obj", ignore_errors=True)
    record = {"name": top, "key": key, "cxx_opt": cxx_opt, "args": args,
              "build_s": round(time.monotonic() - t0, 1)}
    (tmp / "build.json").write_text(json.dumps(record) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def build_record(lib: Path) -> dict | None:
    """The record :func:`build` wrote next to ``lib`` (build seconds, g++ level, Verilator options)."""
    path = Path(lib).parent / "build.json"
    return json.loads(path.read_text()) if path.exists() else None


class NativeFabric:
    """One simulation of a native library (:func:`build`): reset on creation, then operations.

    ``latency``, ``rate`` (bytes per cycle per port; None: no limit) and ``error_ranges`` configure
    the memory as :class:`tessera.tb.common.axi_memory.AxiMemory` documents them."""

    def __init__(self, lib: Path, *, latency: int = 100, rate: float | None = None, error_ranges=(),
                 vcd: Path | None = None):
        self.lib = ctypes.CDLL(str(lib))
        L, c = self.lib, ctypes
        L.tessera_new.restype = c.c_void_p
        L.tessera_new.argtypes = [c.c_int, c.c_double, c.c_char_p]
        for f in ("tessera_free", "tessera_reset"):
            getattr(L, f).argtypes = [c.c_void_p]
        L.tessera_error_range.argtypes = [c.c_void_p, c.c_uint64, c.c_uint64]
        L.tessera_wait.argtypes = [c.c_void_p, c.c_uint64]
        L.tessera_toggle_only.argtypes = [c.c_void_p, c.c_uint64]
        L.tessera_read.argtypes = [c.c_void_p, c.c_uint32, c.POINTER(c.c_uint32), c.c_uint64]
        L.tessera_write.argtypes = [c.c_void_p, c.c_uint32, c.c_uint32, c.c_uint64]
        L.tessera_mem_write.argtypes = [c.c_void_p, c.c_uint64, c.c_char_p, c.c_uint64]
        L.tessera_mem_read.argtypes = [c.c_void_p, c.c_uint64, c.c_void_p, c.c_uint64]
        L.tessera_mem_counters.argtypes = [c.c_void_p, c.c_int, c.POINTER(c.c_uint64)]
        L.tessera_cycle.argtypes = [c.c_void_p]
        L.tessera_cycle.restype = c.c_uint64
        L.tessera_eval_seconds.argtypes = [c.c_void_p]
        L.tessera_eval_seconds.restype = c.c_double
        L.tessera_protocol_error.argtypes = [c.c_void_p]
        L.tessera_protocol_error.restype = c.c_char_p
        self.ports, self.data_bytes = L.tessera_mem_ports(), L.tessera_data_bytes()
        if rate is not None and not rate > 0:
            raise ValueError(f"rate = {rate} bytes per cycle per port; must be > 0 (None: no limit)")
        self._h = L.tessera_new(int(latency), float(rate or 0), str(vcd).encode() if vcd else None)
        try:
            for lo, hi in error_ranges:
                L.tessera_error_range(self._h, int(lo), int(hi))
            self._word = c.c_uint32()
            L.tessera_reset(self._h)
        except BaseException:
            self.close()
            raise

    @property
    def h(self):
        """The C handle; a closed simulation is an error, not a crash."""
        if self._h is None:
            raise NativeError("this NativeFabric is closed")
        return self._h

    def close(self):
        if getattr(self, "_h", None):
            self.lib.tessera_free(self._h)
        self._h = None

    def __del__(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- operations ---------------------------------------------------------------------------
    def read(self, addr: int) -> int:
        resp = self.lib.tessera_read(self.h, addr, ctypes.byref(self._word), HOST_TIMEOUT)
        self._check(resp, f"read of CSR {addr:#06x}")
        return self._word.value

    def write(self, addr: int, value: int):
        self._check(self.lib.tessera_write(self.h, addr, value & 0xFFFF_FFFF, HOST_TIMEOUT),
                    f"write of CSR {addr:#06x}")

    def wait(self, cycles: int):
        if cycles > 0:
            self.lib.tessera_wait(self.h, cycles)
        self._check(0, "wait")

    def mem_write(self, addr: int, data: bytes):
        self.lib.tessera_mem_write(self.h, addr, bytes(data), len(data))

    def mem_read(self, addr: int, n: int) -> bytes:
        buf = ctypes.create_string_buffer(n)
        self.lib.tessera_mem_read(self.h, addr, buf, n)
        return buf.raw

    def mem_counters(self) -> list[dict]:
        """Per memory port: ``r_beats``, ``w_beats``, ``reads``, ``writes``, ``errors``."""
        out = []
        for p in range(self.ports):
            arr = (ctypes.c_uint64 * 5)()
            self.lib.tessera_mem_counters(self.h, p, arr)
            out.append(dict(zip(("r_beats", "w_beats", "reads", "writes", "errors"), arr, strict=True)))
        return out

    def mem_stats(self) -> dict:
        cs = self.mem_counters()
        return {"read_bytes": sum(c["r_beats"] for c in cs) * self.data_bytes,
                "write_bytes": sum(c["w_beats"] for c in cs) * self.data_bytes}

    @property
    def cycle(self) -> int:
        """Clock cycles simulated since the model was created (reset included)."""
        return self.lib.tessera_cycle(self.h)

    @property
    def eval_seconds(self) -> float:
        """Wall time spent inside the Verilated model's ``eval()`` so far."""
        return self.lib.tessera_eval_seconds(self.h)

    def toggle_only(self, cycles: int):
        """The model alone: ``cycles`` clock cycles with its inputs unchanged (speed measurement)."""
        self.lib.tessera_toggle_only(self.h, cycles)

    def _check(self, resp: int, what: str):
        err = self.lib.tessera_protocol_error(self.h)
        if err:
            raise NativeError(f"memory protocol error at cycle {self.cycle}: {err.decode()}")
        if resp == -1:
            raise NativeError(f"{what}: no response in {HOST_TIMEOUT} cycles (cycle {self.cycle})")
        if resp:
            raise NativeError(f"{what}: response {resp} (SLVERR/DECERR) at cycle {self.cycle}")

    def run(self, session, progress=None):
        """Drive ``session`` (a :mod:`tessera.runtime.host` generator) to its end; return its result.
        ``progress()`` is called at each of the session's ``progress`` points."""
        value = None
        try:
            while True:
                op = session.send(value)
                kind = op[0]
                value = None
                if kind == "read":
                    value = self.read(op[1])
                elif kind == "write":
                    self.write(op[1], op[2])
                elif kind == "wait":
                    self.wait(op[1])
                elif kind == "progress":
                    if progress is not None:
                        progress()
                elif kind == "mem_write":
                    self.mem_write(op[1], op[2])
                elif kind == "mem_read":
                    value = self.mem_read(op[1], op[2])
                elif kind == "mem_stats":
                    value = self.mem_stats()
                else:
                    raise ValueError(f"unknown host operation {op!r}")
        except StopIteration as done:
            return done.value
