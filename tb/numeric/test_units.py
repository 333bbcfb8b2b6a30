"""cocotb testbench of the numeric units, all three at once (tessera.tb.numeric.units.NumericUnits).

Each unit gets every pair of special classes, then ``count`` biased random operand sets, with
its clock enable ``en`` toggled at random (probability ``en_prob`` of high). The expected value
of every operand set accepted on an enabled edge comes from the SoftFloat model
(tb/models/numerics.py); after the n-th enabled edge the output must equal the result of the
(n - latency + 1)-th accepted operand set, and it must not change over a disabled edge.

Params: ``latency`` {unit name: [latencies]}; ``count``; ``specials`` (bool); ``en_prob``;
``trace`` (cycles to record for ``tessera sim``). Results go to ``numeric.json`` in the run dir
(and to ``result_path`` when given), also when the test fails.
"""

import json
import os
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

import tessera.tb
from tessera.tb.models import numerics as model
from tessera.tb.numeric import vectors
from tessera.tb.stream import rng_for

MAX_REPORTED = 10


class UnitChecker:
    """Drives one unit's operands and ``en`` and checks each latency copy's output."""

    def __init__(self, dut, name, prefix, inputs, outputs, stimulus, golden, en_prob, rng):
        self.name, self.golden, self.en_prob, self.rng = name, golden, en_prob, rng
        self.inputs = [getattr(dut, f"{prefix}_{port}") for port in inputs]
        self.widths = [len(h) for h in self.inputs]
        self.en = getattr(dut, f"{prefix}_en")
        self.outputs = {lat: getattr(dut, port) for lat, port in outputs.items()}   # latency -> handle
        self.stimulus = stimulus          # list of operand tuples
        self.expected: list[int] = []     # model result of every accepted operand set, in order
        self.operands: list[tuple] = []
        self.enabled = 0                  # enabled edges so far (operand sets accepted)
        self.checked = {lat: 0 for lat in self.outputs}   # distinct stimulus results checked
        self.checks = 0
        self.mismatches: list[dict] = []
        self.mismatch_count = 0
        self.bad: set[tuple[int, int]] = set()
        self.last = None                  # (en, operands) driven for the coming edge
        self.en.value = 0

    @property
    def done(self) -> bool:
        return min(self.checked.values()) >= len(self.stimulus)

    def observe(self) -> dict:
        """At a falling edge: check every output against the edges so far; latency -> (got, want)."""
        seen = {}
        for lat, handle in self.outputs.items():
            index = self.enabled - lat
            if index < 0:
                continue
            got = int(handle.value)
            want = self.expected[index]
            seen[lat] = (got, want)
            self.checks += 1
            if index < len(self.stimulus) and index + 1 > self.checked[lat]:
                self.checked[lat] = index + 1
            if got != want and (lat, index) not in self.bad:     # count each wrong result once
                self.bad.add((lat, index))
                self.mismatch_count += 1
                if len(self.mismatches) < MAX_REPORTED:
                    self.mismatches.append({"latency": lat, "index": index,
                                            "operands": [hex(v) for v in self.operands[index]],
                                            "got": hex(got), "expected": hex(want)})
        return seen

    def drive(self):
        """At a falling edge: choose ``en`` and the operands for the next rising edge."""
        issued = len(self.expected)
        if issued < len(self.stimulus):
            en = self.rng.random() < self.en_prob
            ops = self.stimulus[issued] if en else tuple(self.rng.getrandbits(w) for w in self.widths)
        else:                              # drain the pipelines with zero operands
            en, ops = True, tuple(0 for _ in self.widths)
        for handle, width, v in zip(self.inputs, self.widths, ops, strict=True):
            handle.value = v & ((1 << width) - 1)
        self.en.value = int(en)
        if en:
            self.expected.append(self.golden(*ops) & 0xFFFFFFFF)
            self.operands.append(ops)
            self.enabled += 1
        self.last = (en, ops)

    def summary(self) -> dict:
        return {"unit": self.name, "latencies": sorted(self.outputs), "vectors": len(self.stimulus),
                "checked": min(self.checked.values()), "checks": self.checks,
                "mismatches": self.mismatch_count, "first_mismatches": self.mismatches,
                "enabled_cycles": self.enabled}


def _mac_golden(a, b, c):
    return model.int8_mac(a, b, c)


@cocotb.test()
async def numeric_units_random(dut):
    p = tessera.tb.params()
    lat = p["latency"]
    count = int(p.get("count", 1000))
    en_prob = float(p.get("en_prob", 0.8))
    trace_cycles = int(p.get("trace", 0))
    rng = rng_for("numeric")

    fmul_stim = vectors.special_pairs(vectors.BF16_SPECIALS) if p.get("specials", True) else []
    fadd_stim = vectors.special_pairs(vectors.F32_SPECIALS) if p.get("specials", True) else []
    fmul_stim += [vectors.fmul_pair(rng) for _ in range(count)]
    fadd_stim += [vectors.fadd_pair(rng) for _ in range(count)]
    mac_stim = [vectors.mac_triple(rng) for _ in range(count)]

    spec = {
        "bf16_mul": ("fmul", "ab", "p", fmul_stim, model.f32_mul_bf16),
        "fp32_add": ("fadd", "ab", "s", fadd_stim, model.f32_add),
        "int8_mac": ("mac", "abc", "s", mac_stim, _mac_golden),
    }
    units = []
    for name, lats in lat.items():
        if not lats:
            continue
        prefix, inputs, out, stim, golden = spec[name]
        units.append(UnitChecker(dut, name, prefix, inputs, {lt: f"{prefix}_{out}{lt}" for lt in lats},
                                 stim, golden, en_prob, rng_for(f"{prefix}_en")))

    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0

    trace = []
    cycle = 0
    limit = 20 * (max(len(u.stimulus) for u in units) + 10)
    while not all(u.done for u in units):
        await FallingEdge(dut.clk)
        # One trace row per rising edge: the operands it sampled, each output after it and the
        # index (in acceptance order) of the operand set that output belongs to.
        row = {"edge": cycle}
        for u in units:
            seen = u.observe()
            if 0 < cycle <= trace_cycles:
                row[u.name] = {"en": int(u.last[0]), "in": list(u.last[1]),
                               "out": {lt: [g, w, u.enabled - lt] for lt, (g, w) in seen.items()}}
            u.drive()
        if 0 < cycle <= trace_cycles:
            trace.append(row)
        cycle += 1
        if any(u.mismatch_count >= MAX_REPORTED for u in units) or cycle > limit:
            break

    summaries = [u.summary() for u in units]
    result = {"cycles": cycle, "units": summaries, "trace": trace}
    run_dir = os.environ.get("TESSERA_RUN_DIR")
    if run_dir:
        Path(run_dir, "numeric.json").write_text(json.dumps(result, indent=1))
    if p.get("result_path"):
        Path(p["result_path"]).write_text(json.dumps(result, indent=1))
    for s in summaries:
        dut._log.info("%s: latencies %s, %d/%d vectors checked, %d mismatches, %d enabled of %d cycles"
                      % (s["unit"], s["latencies"], s["checked"], s["vectors"], s["mismatches"],
                         s["enabled_cycles"], cycle))
    bad = [s for s in summaries if s["mismatches"] or s["checked"] < s["vectors"]]
    assert not bad, "numeric mismatches:\n" + json.dumps(bad, indent=1)
