# amaranth: UnusedElaboratable=no
# (the parameter checks build components that are never elaborated)
"""Fabric CSR block under Verilator through its AXI4-Lite host port (tb/fabric/test_csr.py)."""

import pytest

from tessera.rtl.config import preset
from tessera.rtl.fabric.csr import Csr
from tessera.tools.harness import run


@pytest.mark.randomized
@pytest.mark.parametrize("name", ["tiny"])
def test_fabric_csr(name):
    run(Csr(preset(name)), "tessera.tb.fabric.test_csr", name=f"fabric_csr_{name}",
        params={"preset": name, "rounds": 3, "words": 24, "clears": 4, "cycle_rounds": 6, "flushes": 24})


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_fabric_csr_rejects_bad_config():
    with pytest.raises(ValueError, match="FabricConfig"):
        Csr("tiny")


def test_fabric_csr_default_elaborates():
    from amaranth.back import rtlil

    rtlil.convert(Csr(preset("default")), name="fabric_csr_default")


def _table(text: str, heading: str) -> list[list[str]]:
    """The rows (cells) of the first Markdown table after ``heading`` in ``text``."""
    rest = text[text.index(heading):].split("\n")[1:]
    rows, started = [], False
    for line in rest:
        if line.startswith("|"):
            started = True
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set(cells[0]) <= set("-: "):
                rows.append(cells)
        elif started:
            break
    return rows[1:]                       # without the header row


def test_docs_register_tables_match_the_map():
    """docs/csr.md is the contract; rtl/fabric/csr_map.py, which every user imports, must say the
    same: every global, tile and slice register at its address, and nothing more."""
    from pathlib import Path

    from tessera.rtl.fabric import csr_map

    text = (Path(__file__).resolve().parent.parent / "docs" / "csr.md").read_text()
    glob = {name: int(addr, 16) for addr, name, *_ in _table(text, "### Global registers")}
    assert glob == csr_map.REG
    assert f"| 0x000 | ID | RO | {csr_map.ID_VALUE:#010x}".lower() in text.lower()
    tile = {name: int(off.lstrip("+"), 16) for off, name, *_ in _table(text, "### Per-tile registers")}
    assert tile == csr_map.TILE_REG
    slices = [(int(off.lstrip("+"), 16), name) for off, name in _table(text, "### Per-slice registers")]
    assert slices == [(4 * i, n.upper()) for i, n in enumerate(csr_map.L2_COUNTERS)]
    assert (f"tile t at {csr_map.TILE_BASE:#x} + {csr_map.BLOCK_STRIDE:#x} * t" in text
            and f"slice s at {csr_map.SLICE_BASE:#x} + {csr_map.BLOCK_STRIDE:#x} * s" in text)
    # every counter has its register, consecutive words in the order of the map
    for regs, names in ((csr_map.REG, csr_map.GLOBAL_COUNTERS), (csr_map.TILE_REG, csr_map.TILE_COUNTERS)):
        addrs = [regs[n.upper()] for n in names]
        assert addrs == list(range(addrs[0], addrs[0] + 4 * len(names), 4)), names
    states = ", ".join(f"{v} {n}" for v, n in csr_map.STATES.items())
    assert f"| 1:0 | state | {states} " in text, states
    assert csr_map.decode_status(0x0007_0093) == {"state": "ERROR", "error": 9, "pc": 7}
