"""Tessera's Python API: run a GEMM on the simulated fabric from a script or a notebook.

>>> import numpy as np, tessera
>>> a = np.random.default_rng(1).standard_normal((64, 48), dtype=np.float32)
>>> b = np.random.default_rng(2).standard_normal((48, 32), dtype=np.float32)
>>> r = tessera.run_gemm(a, b)              # preset "tiny": A and B rounded to BF16 (RNE)
>>> r.bit_exact, r.d.dtype, r.report["cycles"]

:func:`run_gemm` plans the GEMM onto the preset's mesh, builds the fabric's native simulation
(cached after the first time), runs it and checks D bit-exactly against the golden model
(``tessera.tb.models.gemm``). :func:`estimate_gemm` says beforehand what that will cost, from the
cost model of docs/usage.md; :func:`reference_gemm` is the golden model on the same inputs.
:class:`GemmRun` is what both the API and ``tessera gemm`` use: a GEMM checked and estimated
before anything is built (every error a ``ValueError`` naming the argument), then run.

Input formats (docs/usage.md, "Input formats"): A and B as float32 (rounded to BF16 with round to
nearest even; the report's ``input_conversion`` says so and how many values were rounded),
ml_dtypes bfloat16, uint16 BF16 bit patterns, or int8 (an INT8 GEMM); C as float32 or uint32 FP32
bit patterns (BF16 GEMM) or int32 (INT8 GEMM).
"""

from __future__ import annotations

import dataclasses
import operator
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tessera.runtime.gemm_inputs import operands

__all__ = ["GemmResult", "GemmRun", "estimate_gemm", "presets", "reference_gemm", "run_gemm"]

SEED_MAX = (1 << 31) - 1


def presets() -> list[str]:
    """The names of the configuration presets (``tessera.rtl.config``)."""
    from tessera.rtl.config import PRESETS

    return list(PRESETS)


def _config(preset, flag: str):
    from tessera.rtl.config import FabricConfig
    from tessera.rtl.config import preset as by_name

    if isinstance(preset, FabricConfig):
        return preset
    try:
        return by_name(preset)
    except ValueError as e:
        raise ValueError(f"{flag}: {e}") from None


def reference_gemm(a, b, c=None, *, dtype: str | None = None) -> np.ndarray:
    """D from the golden model (``tessera.tb.models.gemm``: the contract's float32 steps in numpy,
    cross-checked against Berkeley SoftFloat; numpy for INT8) on the inputs as :func:`run_gemm`
    takes them; returned as float32 for a BF16 GEMM, int32 for an INT8 one."""
    from tessera.tb.models.gemm import gemm

    a, b, c, dtype, _ = operands(a, b, c, dtype, names=("a", "b", "c"))
    return _values(gemm(a, b, c, dtype), dtype)


def _values(d: np.ndarray, dtype: str) -> np.ndarray:
    return d.view(np.float32) if dtype == "bf16" else d.view(np.int32)


@dataclass
class GemmResult:
    """One GEMM run: ``d`` (float32 for BF16, int32 for INT8), ``bits`` (D as the fabric wrote
    it: uint32 FP32 bit patterns, or int32), ``report`` (the fields of ``tessera gemm --json``,
    docs/usage.md "Reports") and ``bit_exact`` (D equals the golden model's, bit for bit)."""

    bits: np.ndarray
    report: dict

    @property
    def d(self) -> np.ndarray:
        return _values(self.bits, self.report["dtype"])

    @property
    def bit_exact(self) -> bool:
        return bool(self.report["bit_exact"])

    @property
    def ok(self) -> bool:
        """Bit-exact, every tile done, the final flush without errors."""
        r = self.report
        return r["bit_exact"] and not r["flush_errors"] and set(r["tile_states"].values()) == {"DONE"}


def check_gemm(preset, m: int, n: int, k: int, dtype: str, *, has_c: bool, modes=(True,), mem_latency=100,
               mem_bytes_per_cycle=None, seed=None, engine: str = "native", flags: dict | None = None,
               bias: bool = False, act: str = "none"):
    """Every check of a GEMM that needs its shape but not its data: the preset, the engine, the
    memory, the seed, the multicast modes and the plan (whether it fits the fabric's memory).
    Returns ``(cfg, plans, mem_latency, seed)``; errors name the argument (``flags`` maps names to
    the CLI's flags). ``tessera gemm`` runs it before it draws random data."""
    from tessera.runtime.gemm_map import plan_gemm
    from tessera.tools.fabric_run import ENGINES, check_memory

    def flag(name):
        return (flags or {}).get(name, name)

    cfg = _config(preset, flag("preset"))
    if engine not in ENGINES:
        raise ValueError(f"{flag('engine')}: {engine!r} is not an engine; allowed: {', '.join(ENGINES)}")
    mem_latency = check_memory(mem_latency, mem_bytes_per_cycle, flag)
    if seed is not None:
        try:
            if isinstance(seed, bool):
                raise TypeError
            seed = operator.index(seed)
        except TypeError:
            raise ValueError(f"{flag('seed')}: {seed!r} is not an integer") from None
        if not 0 <= seed <= SEED_MAX:
            raise ValueError(f"{flag('seed')}: {seed} is out of range; allowed: [0, {SEED_MAX}]")
    for mc in modes:
        if not isinstance(mc, (bool, np.bool_)):
            raise ValueError(f"{flag('multicast')}: {mc!r} is not True or False")
    from tessera.runtime.gemm_map import EPILOGUE_ACTS, SFU_ACTS, sfu_missing

    if act not in EPILOGUE_ACTS:
        raise ValueError(f"{flag('act')}: {act!r} is not allowed; allowed: {', '.join(EPILOGUE_ACTS)}")
    if act in SFU_ACTS and not cfg.tile.sfu:
        raise ValueError(f"{flag('act')}: " + sfu_missing(cfg, repr(act)))
    if (bias or act != "none") and dtype != "bf16":
        raise ValueError(f"{flag('bias' if bias else 'act')}: the epilogue (bias, act) needs a BF16 GEMM"
                         f" (FP32 results); this one is {dtype}")
    try:
        plans = [plan_gemm(cfg, operator.index(m), operator.index(n), operator.index(k), dtype, has_c=has_c,
                           multicast=bool(mc), bias=bias, act=act) for mc in modes]
    except ValueError as e:
        raise ValueError(f"{flag('a')}: {e}") from None
    return cfg, plans, mem_latency, seed


@dataclass
class GemmRun:
    """A GEMM checked, planned and estimated, ready to run (nothing is built or simulated before
    :meth:`run`). ``modes``: the multicast settings to run, in order, in one simulation.
    ``flags`` maps argument names to the names errors should use (the CLI's ``--a`` ...)."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray | None = None
    dtype: str | None = None
    preset: object = "tiny"
    modes: tuple = (True,)
    mem_latency: int = 100
    mem_bytes_per_cycle: float | None = None
    seed: int | None = None
    engine: str = "native"
    waves: bool = False
    flags: dict = field(default_factory=dict)
    bias: np.ndarray | None = None      # the epilogue: D = act(C + A x B + bias), on the vector engines
    act: str = "none"

    def __post_init__(self):
        names = tuple(self._flag(n) for n in ("a", "b", "c"))
        try:
            ops = operands(self.a, self.b, self.c, self.dtype, names=names)
        except ValueError as e:
            msg = str(e)
            raise ValueError(msg.replace("dtype:", f"{self._flag('dtype')}:", 1) if msg.startswith("dtype:")
                             else msg) from None
        self.a, self.b, self.c, self.dtype, self.conversions = ops
        (self.m, self.k), self.n = self.a.shape, self.b.shape[1]
        self.act = "none" if self.act is None else self.act
        if self.bias is not None:
            self.bias = _bias_bits(self.bias, self.n, self._flag("bias"))
        self.cfg, self.plans, self.mem_latency, self.seed = check_gemm(
            self.preset, self.m, self.n, self.k, self.dtype, has_c=self.c is not None, modes=self.modes,
            mem_latency=self.mem_latency, mem_bytes_per_cycle=self.mem_bytes_per_cycle, seed=self.seed,
            engine=self.engine, flags=self.flags, bias=self.bias is not None, act=self.act)

    def _flag(self, name: str) -> str:
        return self.flags.get(name, name)

    def estimate(self) -> dict:
        """What the run will cost (docs/usage.md, "Cost model"): ``cycles`` (per job:
        :func:`tessera.runtime.estimate.gemm_cycles`), ``build`` (what must be exported and
        built, with estimated seconds) and ``seconds`` (build + simulation, estimated)."""
        return _estimate(self.cfg, self.plans, self.mem_latency, self.mem_bytes_per_cycle, self.engine,
                         self.waves)

    def run(self, *, progress: bool = False, keep: bool = False, run_root: Path | None = None
            ) -> list[GemmResult]:
        """Build (or reuse) the fabric and run every mode; D checked against the golden model.

        Each run has a folder of its own under ``build/runs/gemm/`` (``run_root``), so that runs
        may go on side by side; it is removed after a run that succeeded unless ``keep`` or
        ``waves`` (the VCD is there); a failed run's folder stays for the post-mortem and the
        reports name it (``run_dir``)."""
        from tessera.tools.cost import record_run
        from tessera.tools.fabric_run import fabric_name, run_jobs, save_job
        from tessera.tools.toolchain import BUILD

        t0 = time.monotonic()
        root = Path(run_root) if run_root else BUILD / "runs" / "gemm"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = root / f"{fabric_name(self.cfg)}-{self.m}x{self.n}x{self.k}-{self.dtype}-{stamp}-{os.getpid()}"
        base = _unique(base)
        jobs = []
        for mc in self.modes:
            work = base / ("multicast" if mc else "unicast")
            save_job(work, self.a, self.b, self.c, bias=self.bias)
            jobs.append({"dir": str(work), "dtype": self.dtype, "multicast": bool(mc), "act": self.act})
        try:
            results = run_jobs(self.cfg, jobs, mem_latency=self.mem_latency,
                               mem_bytes_per_cycle=self.mem_bytes_per_cycle, seed=self.seed,
                               progress=progress, engine=self.engine, waves=self.waves,
                               replay=self._flag("seed") + (" {seed}" if self._flag("seed").startswith("-")
                                                            else "={seed}"))
        except KeyboardInterrupt:
            shutil.rmtree(base, ignore_errors=True)
            raise
        except Exception:
            print(f"[tessera] the run failed; its folder is kept: {base}", file=sys.stderr)
            raise
        golden = self.reference()
        wall = time.monotonic() - t0
        est = self.estimate()["cycles"]
        out = []
        for plan, res, e in zip(self.plans, results, est, strict=True):
            record_run(self.cfg, self.engine, e["model"], res["sim_cycles"], res["sim_seconds"], self.waves)
            rep = self._report(plan, res, bool(np.array_equal(res["d"].view(golden.dtype), golden)), e)
            rep["wall_seconds"] = round(wall, 3)
            out.append(GemmResult(bits=res["d"].view(golden.dtype), report=rep))
        if all(r.ok for r in out) and not (keep or self.waves):
            shutil.rmtree(base, ignore_errors=True)
        else:
            for r in out:
                r.report["run_dir"] = str(base)
        return out

    def reference(self) -> np.ndarray:
        """The golden D: :func:`tessera.tb.models.gemm.gemm`, then the epilogue in the vector
        engine's numerics (``tb/models/vector.py``): D + bias (RNE), then ``act``."""
        from tessera.tb.models import vector as vm
        from tessera.tb.models.gemm import gemm

        d = gemm(self.a, self.b, self.c, self.dtype)
        if self.bias is not None:
            d = vm.add(d, self.bias[None, :])
        if self.act in ("relu", "gelu"):
            d = getattr(vm, self.act)(d)
        return d

    def _report(self, plan, res: dict, exact: bool, estimate: dict) -> dict:
        from tessera.runtime.host import mem_bandwidth
        from tessera.tools.provenance import commit, version

        acks = store_acks(self.cfg, plan.words)
        rep = report_of(self.cfg, res, self.a, self.b, self.c, self.dtype, exact, acks)
        rep.update({
            "epilogue": {"bias": self.bias is not None, "act": self.act},
            "multicast": plan.multicast, "mem_latency": self.mem_latency,
            "mem_bytes_per_cycle": mem_bandwidth(self.cfg, self.mem_bytes_per_cycle),
            "engine": self.engine, "seed": self.seed, "input_conversion": list(self.conversions),
            "estimate": {"cycles": estimate["tiles"], "sim_cycles": estimate["total"],
                         "calibration": estimate["scale"]},
            "config": dataclasses.asdict(self.cfg), "commit": commit(), "version": version(),
        })
        if res.get("vcd"):
            rep["vcd"] = res["vcd"]
        return rep


def _estimate(cfg, plans, mem_latency, mem_bytes_per_cycle, engine, waves) -> dict:
    """The cost of running ``plans``: ``cycles`` (per plan, the cycle model's figures times the
    configuration's calibration factor; ``model``: unscaled), ``build``, speed and seconds."""
    from tessera.runtime.estimate import gemm_cycles
    from tessera.tools.cost import build_estimate, cycle_scale, sim_rate, vcd_bytes

    scale = cycle_scale(cfg)
    cycles = []
    for p in plans:
        model = gemm_cycles(p, mem_latency=mem_latency, mem_bytes_per_cycle=mem_bytes_per_cycle)
        cycles.append({**{k: round(v * scale) for k, v in model.items()}, "model": model["total"],
                       "scale": round(scale, 3)})
    build = build_estimate(cfg, engine=engine, waves=waves)
    rate = sim_rate(cfg, engine, waves)
    total = sum(c["total"] for c in cycles)
    sim_s = total / rate
    return {"cycles": cycles, "build": build, "sim_cycles_per_second": rate, "sim_seconds": sim_s,
            "seconds": build["seconds"] + sim_s, "vcd_bytes": vcd_bytes(cfg, total) if waves else 0}


def _bias_bits(bias, n: int, flag: str) -> np.ndarray:
    """The epilogue's bias as N FP32 bit patterns: float32 values or uint32 bit patterns."""
    arr = np.asarray(bias)
    if arr.shape != (n,):
        raise ValueError(f"{flag}: shape {arr.shape}; the bias is one value per column of D: ({n},)")
    if arr.dtype == np.float32:
        return arr.view(np.uint32).copy()
    if arr.dtype == np.uint32:
        return arr.copy()
    hint = " (convert float64 with .astype(np.float32) first)" if arr.dtype == np.float64 else ""
    raise ValueError(f"{flag}: {arr.dtype} is not accepted; float32, or uint32 FP32 bit patterns{hint}")


def _unique(path: Path) -> Path:
    """``path``, or ``path-2``, ``path-3`` ... : the first that does not exist yet (made now)."""
    n = 1
    while True:
        cand = path if n == 1 else path.with_name(f"{path.name}-{n}")
        try:
            cand.mkdir(parents=True)
            return cand
        except FileExistsError:
            n += 1


def run_gemm(a, b, c=None, *, dtype: str | None = None, preset="tiny", multicast: bool = True,
             mem_latency: int = 100, mem_bytes_per_cycle: float | None = None, seed: int | None = None,
             engine: str = "native", waves: bool = False, progress: bool = False,
             max_seconds: float | None = None, bias=None, act: str | None = None) -> GemmResult:
    """``D = act(C + A x B + bias)`` on the simulated fabric of ``preset`` (a name or a ``FabricConfig``).

    ``a`` (M x K), ``b`` (K x N): float32 (rounded to BF16, RNE), ml_dtypes bfloat16, uint16 BF16
    bit patterns, or int8 (an INT8 GEMM); ``c`` (M x N, optional): float32 / uint32 FP32 bits, or
    int32. ``dtype``: "bf16" or "int8", or None to take it from the arrays. ``multicast=False``:
    every tile loads its own A and B. ``mem_latency`` (cycles) and ``mem_bytes_per_cycle`` (None:
    one AXI beat per port per cycle) set the memory behind the fabric; ``seed`` is recorded (and
    seeds the cocotb engine's random stimulus). ``engine``: "native" (fast) or "cocotb" (the
    verification path; the same cycles). ``waves``: write a VCD (its path is ``report["vcd"]``).
    ``max_seconds``: refuse (``ValueError``, with the estimate) a run estimated to take longer.
    The epilogue (BF16 GEMMs), on each tile's vector engine before D is stored: ``bias`` (N
    float32 values or uint32 FP32 bits) added to every row, then ``act`` ("relu", "gelu" on a fabric with
    special functions (``TileConfig.sfu``), or None).

    Returns a :class:`GemmResult`; D is checked against the golden model (``result.bit_exact``).
    Bad arguments raise ``ValueError`` naming the argument before anything is built."""
    run = GemmRun(a, b, c, dtype=dtype, preset=preset, modes=(multicast,), mem_latency=mem_latency,
                  mem_bytes_per_cycle=mem_bytes_per_cycle, seed=seed, engine=engine, waves=waves, bias=bias,
                  act=act)
    if max_seconds is not None:
        est = run.estimate()
        if est["seconds"] > max_seconds:
            raise ValueError(f"max_seconds: the run is estimated at {describe_seconds(est['seconds'])}"
                             f" ({describe_estimate(est)}), above max_seconds = {max_seconds}")
    return run.run(progress=progress)[0]


def estimate_gemm(m: int, n: int, k: int, *, dtype: str = "bf16", preset="tiny", accumulate: bool = False,
                  multicast: bool = True, mem_latency: int = 100, mem_bytes_per_cycle: float | None = None,
                  engine: str = "native") -> dict:
    """What :func:`run_gemm` of an M x N x K GEMM would cost, without running it: the estimated
    ``cycles`` of the job (``tiles``: the report's ``cycles``; ``total``: all the simulation
    runs), the ``build`` still to be done and ``seconds`` in all (docs/usage.md, "Cost model")."""
    if dtype not in ("bf16", "int8"):
        raise ValueError(f"dtype: {dtype!r} is not allowed; allowed: bf16, int8")
    for name, v in (("m", m), ("n", n), ("k", k)):
        try:
            if isinstance(v, bool) or operator.index(v) < 1:
                raise TypeError
        except TypeError:
            raise ValueError(f"{name}: {v!r} must be a positive integer") from None
    cfg, (plan,), mem_latency, _ = check_gemm(preset, m, n, k, dtype, has_c=accumulate, modes=(multicast,),
                                             mem_latency=mem_latency, mem_bytes_per_cycle=mem_bytes_per_cycle,
                                             engine=engine, flags={"a": "m"})
    est = _estimate(cfg, [plan], mem_latency, mem_bytes_per_cycle, engine, False)
    return {"cycles": est["cycles"][0], "build": est["build"], "sim_seconds": est["sim_seconds"],
            "seconds": est["seconds"]}


def describe_seconds(s: float) -> str:
    if s < 1:
        return "<1 s"
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def describe_estimate(est: dict) -> str:
    """'build: cached; simulation 12 s (35,000 cycles at ~42,000 cycles/s)' and the like."""
    from tessera.tools.build_cache import format_size

    b = est["build"]
    cycles = sum(c["total"] for c in est["cycles"])
    build = "cached" if not b["steps"] else " + ".join(f"{s} {describe_seconds(t)}" for s, t in b["steps"])
    vcd = f"; waveform ~{format_size(est['vcd_bytes'])}B" if est.get("vcd_bytes") else ""
    return (f"build: {build}; simulation {describe_seconds(est['sim_seconds'])} ({cycles:,} cycles at"
            f" ~{est['sim_cycles_per_second']:,.0f} cycles/s){vcd}")


def store_acks(cfg, programs) -> int:
    """Responses the L2 sends for the STOREs of ``programs`` (tile -> words) when every request
    succeeds: one per line segment of a row (the tensor DMA's acknowledged WRITE; its ALLOC and
    other WRITEs are quiet)."""
    from tessera.rtl.tile.isa import Opcode
    from tessera.runtime import isa

    line = cfg.cache.line_bytes
    acks = 0
    for words in programs.values():
        for word in words:
            f = isa.decode(word)
            if f["opcode"] != Opcode.STORE.value:
                continue
            for r in range(f["rows"]):
                start = f["mem_addr"] + r * f["stride"]
                if f["row_bytes"]:
                    acks += (start + f["row_bytes"] - 1) // line - start // line + 1
    return acks


def report_of(cfg, res: dict, a, b, c, dtype: str, exact: bool, acks: int = 0) -> dict:
    """The report fields of one run (``res``: the run's result.json; docs/usage.md, "Reports")."""
    m, k = a.shape
    n = b.shape[1]
    macs = m * n * k
    cyc = max(1, res["cycles"])
    ctr = res["counters"]
    slices = ctr["slices"]
    compulsory = a.nbytes + b.nbytes + (c.nbytes if c is not None else 0)
    return {
        "preset": cfg.name, "m": m, "n": n, "k": k, "dtype": dtype, "accumulate": c is not None,
        "tiles": cfg.tiles, "rows": cfg.tensor.rows, "cols": cfg.tensor.cols,
        "cycles": res["cycles"],
        "macs": macs,
        "utilization": macs / (cfg.tiles * cfg.tensor.rows * cfg.tensor.cols * cyc),
        "dram_read_bytes": res["dram_read_bytes"],
        "dram_write_bytes": res["dram_write_bytes"],
        "compulsory_read_bytes": compulsory,
        "dram_read_over_compulsory": res["dram_read_bytes"] / compulsory,
        "l2_hits": sum(s["hits"] for s in slices),
        "l2_misses": sum(s["misses"] for s in slices),
        "l2_secondary_misses": sum(s["secondary_misses"] for s in slices),
        "l2_requests": sum(s["requests"] for s in slices),
        "noc_link_traversals": ctr["noc_link_flits"],
        "noc_eject_flits": ctr["noc_eject_flits"],
        "l2_response_flits": ctr["l2_resp_flits"],
        # L2 -> tile data: every response flit but the one-flit acknowledgements of the STOREs
        # (the same in both modes), i.e. the read responses (2 flits per word, one per multicast)
        "l2_read_response_flits": ctr["l2_resp_flits"] - acks,
        "multicast_packets": ctr["mcast_packets"],
        "per_tile_busy_cycles": [t["busy_cycles"] for t in ctr["tiles"]],
        "flush_cycles": res["flush_cycles"],
        "flush_errors": res["flush_errors"],
        "tile_states": {t: s["state"] for t, s in res["statuses"].items()},
        "plan": res["plan"],
        "bit_exact": exact,
        "sim_seconds": res["sim_seconds"],
        "sim_cycles": res["sim_cycles"],
        "sim_cycles_per_second": round(res["sim_cycles"] / max(res["sim_seconds"], 1e-9)),
    }
