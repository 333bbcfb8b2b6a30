"""Formal proofs with pip-only tools (``tb/formal``, ``make formal``; docs/verification.md): the quick
properties hold, and the checker finds the counterexample of a router with a credit bug and of a
sequencer expected to stop a cycle early (the properties are not vacuous)."""

import pytest
from amaranth.hdl import Assert, Const

from tessera.rtl.config import preset
from tessera.rtl.noc.router import Router
from tessera.tb.formal import PROPERTIES, prove
from tessera.tb.formal.axil import CsrProperties
from tessera.tb.formal.sequencer import SequencerProperties


@pytest.mark.parametrize("name", [n for n, p in PROPERTIES.items() if p.quick])
def test_formal_property_holds(name, tmp_path):
    r = prove(name, tmp_path)
    print(f"{name}: {r['status']} in {r['seconds']} s ({PROPERTIES[name].mode}, depth {r['depth']})")
    assert r["status"] == "PASS", r["log"]


class _HeadOnlyCredits(Router):
    """A router that spends a credit only for head flits (body flits go free): a bug the credit
    properties must catch."""

    def _output_vc_update(self, m, o, link, sel, state):
        V = self.cfg.vcs
        for c in range(2):
            for v in range(V):
                vc = state[o, c, v]
                send = link.valid & (sel.cls == c) & (sel.vc == Const(v, len(sel.vc)))
                m.d.sync += vc.credit.eq(vc.credit + link.credit[c * V + v] - (send & sel.head))
                with m.If(send & sel.head & ~sel.tail):
                    m.d.sync += vc.owned.eq(1)
                with m.If(send & sel.tail):
                    m.d.sync += vc.owned.eq(0)
                self._credit_properties(m, vc.credit, send, link.credit[c * V + v], f"{o}_c{c}_v{v}")


def test_formal_catches_a_credit_bug(tmp_path):
    prop = PROPERTIES["router_credits_2x1"]
    bad = _HeadOnlyCredits(prop.make.cfg, 0, 0, formal=True)
    r = prove(prop, tmp_path, depth=5, design=bad)
    print(r["log"])
    assert r["status"] == "FAIL" and r["trace"], r["log"]
    assert "Assert failed" in r["log"] or "failed assertion" in r["log"], r["log"]


class _Hasty(SequencerProperties):
    check_cycles = 2            # one cycle too early: the sequencer cannot meet it


def test_formal_sequencer_property_is_not_vacuous(tmp_path):
    prop = PROPERTIES["sequencer_malformed_word"]
    r = prove(prop, tmp_path, depth=8, design=_Hasty(preset("tiny")))
    assert r["status"] == "FAIL" and r["trace"], r["log"]


class _NeverAnswers(CsrProperties):
    """Claims that the CSR port never gives a B (or an R) response: false if, under the master's
    assumed rules, writes and reads do complete (the assumptions leave room for them)."""

    def __init__(self, cfg, channel: str):
        self.channel = channel
        super().__init__(cfg)

    def properties(self, m):
        super().properties(m)
        m.d.comb += Assert(~getattr(self.s_axil, f"{self.channel}valid"))


@pytest.mark.parametrize("channel", ["b", "r"])
def test_formal_csr_responses_are_reachable(channel, tmp_path):
    prop = PROPERTIES["csr_axil_handshakes"]
    r = prove(prop, tmp_path, depth=8, design=_NeverAnswers(prop.make.cfg, channel))
    assert r["status"] == "FAIL" and r["trace"], r["log"]
