"""How many cycles a GEMM will take on a fabric: the cost model behind ``tessera gemm``'s estimate,
its progress total and the Python API's :func:`tessera.estimate_gemm`.

A GEMM run simulates three phases (docs/usage.md, "Cost model"):

* **the host pushes the programs** over AXI4-Lite: ``HOST_CYCLES_PER_WORD`` per instruction word
  plus ``HOST_FIXED``;
* **the tiles compute** (the report's ``cycles``): the larger of the planner's own per-round model
  (:func:`tessera.runtime.gemm_map.plan_cost`: per chunk the largest of tensor-core, L2 and DMA
  cycles, plus overheads, times ``COMPUTE_SCALE``) and the memory's limit: the bytes A, B, C and D
  move over the smaller of the memory bandwidth and what the slices' MSHRs sustain at the memory
  latency (``mshrs * line_bytes / latency`` per slice);
* **the final L2 flush** writes D's dirty lines back: its bytes at the memory bandwidth plus
  ``FLUSH_FIXED``.

The constants were fitted to the native engine's runs of 12 GEMMs on ``tiny`` (1^3 to 512 x 512 x
32, BF16 and INT8, memory latency 30 to 300) and the three on ``default`` of docs/results.md; over
them the estimate is within 0.72x .. 1.20x of the measured cycles (docs/usage.md lists each run).
"""

from __future__ import annotations

from tessera.runtime.gemm_map import plan_cost
from tessera.runtime.host import mem_bandwidth

COMPUTE_SCALE = 1.3        # measured tile cycles / planner cost: median over the calibration runs
HOST_CYCLES_PER_WORD = 5   # AXI4-Lite writes of one 128-bit instruction word, and the polls between
HOST_FIXED = 1_100         # reset, identification, counter reads before and after
FLUSH_FIXED = 400          # the flush command, the walk over the L2's sets, the completion poll


def gemm_cycles(plan, *, mem_latency: int = 100, mem_bytes_per_cycle: float | None = None) -> dict:
    """Estimated cycles of ``plan`` (a :class:`~tessera.runtime.gemm_map.GemmPlan`):
    ``{"host", "compute", "memory", "tiles", "flush", "total"}``; ``tiles`` estimates the report's
    ``cycles``, ``total`` the cycles the simulation runs for the job."""
    cfg = plan.cfg
    bw = mem_bandwidth(cfg, mem_bytes_per_cycle)
    mshr_bw = cfg.tiles * cfg.cache.mshrs * cfg.cache.line_bytes / max(1, mem_latency)
    e = plan.e
    moved = (plan.m * plan.k + plan.k * plan.n) * e + 4 * plan.m * plan.n * (2 if plan.has_c else 1)
    compute = COMPUTE_SCALE * plan_cost(plan)
    memory = moved / min(bw, mshr_bw) + mem_latency
    tiles = max(compute, memory)
    words = sum(len(p.words) for p in plan.programs.values())
    host = HOST_FIXED + HOST_CYCLES_PER_WORD * words
    flush = FLUSH_FIXED + min(4 * plan.m * plan.n, cfg.tiles * cfg.cache.sets * cfg.cache.ways
                              * cfg.cache.line_bytes) / bw
    out = {"host": host, "compute": compute, "memory": memory, "tiles": tiles, "flush": flush,
           "total": host + tiles + flush}
    return {k: int(round(v)) for k, v in out.items()}
