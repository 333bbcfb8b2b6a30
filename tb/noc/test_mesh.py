"""cocotb testbench of the mesh (through ``FlatMesh``): random traffic and a broadcast probe.

``traffic``: every source endpoint generates packets (Bernoulli per cycle, unbounded source
queue) of the given pattern, optionally mixed with random multicasts and malformed packets, for
``cycles`` cycles, then drains. The ejection side applies random back-pressure. A scoreboard
checks that every packet and every multicast copy arrives exactly once, intact (every beat's data
and header), in order per (source, destination, class); malformed packets (a unicast outside the
mesh, an empty multicast) must never arrive, and a multicast longer than ``depth`` beats must
arrive truncated to its first ``depth`` beats (``last`` on beat ``depth``) at every destination;
each of them is counted once in ``errors``. A watchdog fails the run when nothing moves for
``watchdog`` cycles while packets are outstanding. Statistics go to ``result.json`` in the run directory.

``broadcast``: at zero load, one unicast from ``src`` to the farthest node, then one multicast
from ``src`` to every node; records latencies and link traversals of each.
"""

from __future__ import annotations

import collections
import json
import os

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

import tessera.tb
from tessera.tb.models.noc import MeshModel
from tessera.tb.stream import layout_fields, pack, rng_for, unpack


class Codec:
    """Beat <-> integer, from the RTL's layouts (field names and widths only)."""

    def __init__(self, p):
        from tessera.rtl.config import NocConfig
        from tessera.rtl.noc.layouts import beat_layout, header_layout

        self.cfg = cfg = NocConfig(width=p["width"], height=p["height"], flit_bits=p["flit_bits"],
                                   vcs=p["vcs"], depth=p["depth"], local_ports=p["local_ports"])
        self.hdr_fields = layout_fields(header_layout(cfg))
        self.beat_fields = layout_fields(beat_layout(cfg))
        self.hdr_shift = dict((n, i) for i, (n, _) in enumerate(self.beat_fields))
        self.beat_bits = beat_layout(cfg).size
        self.fb = cfg.flit_bits
        self.dmask = (1 << cfg.flit_bits) - 1

    def beat(self, data: int, last: int, hdr: dict) -> int:
        return pack(self.beat_fields, {"data": data, "last": last, "hdr": pack(self.hdr_fields, hdr)})

    def unbeat(self, word: int) -> dict:
        b = unpack(self.beat_fields, word)
        b["hdr"] = unpack(self.hdr_fields, b["hdr"])
        return b

    def data(self, uid: int, idx: int) -> int:
        return (uid * 0x9E3779B1 + idx * 0x7F4A7C15 + (uid << 3)) & self.dmask


class Packet:
    __slots__ = ("uid", "src", "cls", "mcast", "dest", "port", "flits", "deliver", "gen", "dests", "bad",
                 "hops", "measured", "beats", "done")

    def __init__(self, **kw):
        for k in self.__slots__:
            setattr(self, k, kw.get(k))


class Bench:
    def __init__(self, dut, p):
        self.dut, self.p = dut, p
        self.codec = Codec(p)
        self.model = MeshModel(p["width"], p["height"])
        self.lp = p["local_ports"]
        self.E = self.model.nodes * self.lp
        self.W = self.codec.beat_bits
        self.cycle = 0
        self.uid = 0
        self.queues = [collections.deque() for _ in range(self.E)]   # packets waiting to send
        self.cur = [None] * self.E          # (packet, beat index) offered on tx
        self.expect = collections.defaultdict(collections.deque)     # (src_ep, dst_ep, cls) -> uids
        self.packets: dict[int, Packet] = {}
        self.rx_cur = [None] * self.E       # (packet, beat index) being received
        self.errors: list[str] = []
        self.bad_sent = 0                   # malformed packets: dropped whole
        self.overlong_sent = 0              # multicasts longer than depth: truncated
        self.outstanding = 0                # copies still to arrive + packets not fully sent
        self.copies_delivered = 0
        self.eject_flits_window = 0
        self.lat = []                       # (hops, latency, measured, mcast)
        self.tx_payload = 0
        self.tx_valid = 0
        self.rx_ready = 0
        self.window = (0, 0)

    def err(self, msg):
        if len(self.errors) < 20:
            self.errors.append(f"cycle {self.cycle}: {msg}")

    def new_packet(self, src_ep, cls, mcast, dest, port, flits, bad=False):
        self.uid += 1
        pk = Packet(uid=self.uid, src=src_ep, cls=cls, mcast=mcast, dest=dest, port=port, flits=flits,
                    deliver=flits, gen=self.cycle, bad=bad, done=0,
                    measured=self.window[0] <= self.cycle < self.window[1])
        node = src_ep // self.lp
        if bad:
            pk.dests, pk.hops = [], 0
            self.bad_sent += 1
        else:
            nodes = self.model.mask_nodes(dest) if mcast else [dest]
            pk.dests = [n * self.lp + port for n in nodes]
            pk.hops = max(self.model.hops(node, n) for n in nodes)
            if mcast and flits > self.p["depth"]:
                pk.deliver = self.p["depth"]     # the NI cuts it to its first depth beats
                self.overlong_sent += 1
            for d in pk.dests:
                self.expect[(src_ep, d, cls)].append(pk.uid)
            self.outstanding += len(pk.dests)
        hdr = {"cls": cls, "mcast": mcast, "port": port, "dest": dest}
        pk.beats = [self.codec.beat(self.codec.data(pk.uid, i), int(i == flits - 1), hdr)
                    for i in range(flits)]
        self.packets[pk.uid] = pk
        self.queues[src_ep].append(pk)
        self.outstanding += 1      # until its last beat is accepted
        return pk

    def on_rx(self, e, word):
        b = self.codec.unbeat(word)
        h = b["hdr"]
        cur = self.rx_cur[e]
        if cur is None:
            src_ep = h["src"] * self.lp + h["src_port"]
            q = self.expect.get((src_ep, e, h["cls"]))
            if not q:
                self.err(f"endpoint {e}: unexpected packet from {src_ep} class {h['cls']} "
                         f"data {b['data']:#x}")
                return
            pk = self.packets[q.popleft()]
            cur = [pk, 0]
            self.rx_cur[e] = cur
        pk, i = cur
        want = self.codec.data(pk.uid, i)
        if b["data"] != want or h["cls"] != pk.cls or h["src"] * self.lp + h["src_port"] != pk.src \
                or h["mcast"] != pk.mcast or h["port"] != pk.port or h["dest"] != 1 << (e // self.lp):
            self.err(f"endpoint {e}: packet {pk.uid} beat {i}: got data {b['data']:#x} hdr {h}, "
                     f"expected data {want:#x} from {pk.src} class {pk.cls}")
        last = i == pk.deliver - 1
        if b["last"] != int(last):
            self.err(f"endpoint {e}: packet {pk.uid} beat {i} of {pk.deliver} (sent {pk.flits}): "
                     f"last={b['last']}")
        if self.window[0] <= self.cycle < self.window[1]:
            self.eject_flits_window += 1
        if b["last"] or last:
            self.rx_cur[e] = None
            self.outstanding -= 1
            self.copies_delivered += 1
            pk.done += 1
            self.lat.append((pk.hops, self.cycle - pk.gen, pk.measured, pk.mcast, pk.done == len(pk.dests)))
        else:
            cur[1] = i + 1

    async def step(self, edge):
        """One clock: account the transfers of this edge, then drive the next cycle."""
        dut = self.dut
        await edge
        self.cycle += 1
        if self.tx_valid:
            acc = self.tx_valid & int(dut.tx_ready.value)
        else:
            acc = 0
        fire = int(dut.rx_valid.value) & self.rx_ready if self.rx_ready else 0
        moved = bool(acc or fire)
        if fire:
            word = int(dut.rx_payload.value)
            mask = (1 << self.W) - 1
            e = 0
            while fire:
                if fire & 1:
                    self.on_rx(e, (word >> (e * self.W)) & mask)
                fire >>= 1
                e += 1
        changed = False
        e = 0
        while acc:
            if acc & 1:
                pk, i = self.cur[e]
                if i + 1 < pk.flits:
                    self.cur[e] = (pk, i + 1)
                else:
                    self.queues[e].popleft()
                    self.cur[e] = None
                    self.outstanding -= 1
                changed = True
            acc >>= 1
            e += 1
        return moved, changed

    def drive(self, changed, ready_prob, rng):
        valid = 0
        for e in range(self.E):
            if self.cur[e] is None and self.queues[e]:
                self.cur[e] = (self.queues[e][0], 0)
                changed = True
            if self.cur[e] is not None:
                valid |= 1 << e
        if changed:
            payload = 0
            for e in range(self.E):
                if self.cur[e] is not None:
                    pk, i = self.cur[e]
                    payload |= pk.beats[i] << (e * self.W)
            if payload != self.tx_payload:
                self.dut.tx_payload.value = payload
                self.tx_payload = payload
        if valid != self.tx_valid:
            self.dut.tx_valid.value = valid
            self.tx_valid = valid
        if ready_prob >= 1.0:
            ready = (1 << self.E) - 1
        else:
            ready = 0
            for e in range(self.E):
                if rng.random() < ready_prob:
                    ready |= 1 << e
        if ready != self.rx_ready:
            self.dut.rx_ready.value = ready
            self.rx_ready = ready


async def reset(dut):
    cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
    dut.tx_valid.value = 0
    dut.tx_payload.value = 0
    dut.rx_ready.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 1)


def write_result(result: dict):
    run_dir = os.environ.get("TESSERA_RUN_DIR")
    if run_dir:
        with open(os.path.join(run_dir, result.get("file", "result.json")), "w") as f:
            json.dump(result, f)


@cocotb.test()
async def traffic(dut):
    p = tessera.tb.params()
    rng = rng_for("noc-traffic")
    await reset(dut)
    b = Bench(dut, p)
    E, lp, model = b.E, b.lp, b.model
    fmin, fmax = p.get("flits_min", 1), p.get("flits_max", 1)
    mcast_prob, bad_prob = p.get("mcast_prob", 0.0), p.get("bad_prob", 0.0)
    overlong_prob = p.get("overlong_prob", 0.0)     # share of the multicasts made over-long
    resp_prob = p.get("response_prob", 0.5)
    ready_prob = p.get("ready_prob", 1.0)
    cycles, watchdog = p["cycles"], p.get("watchdog", 1000)
    drain_limit = p.get("drain_limit", 200000)
    pattern = p["pattern"]
    sources = p.get("sources") or list(range(E))
    depth = p["depth"]
    rates = p.get("rates") or [p["rate"]]      # offered flits per endpoint per cycle, one phase each

    def generate(src_ep):
        node = src_ep // lp
        flits = rng.randint(fmin, fmax)
        cls = 1 if rng.random() < resp_prob else 0
        port = rng.randrange(lp)
        if bad_prob and rng.random() < bad_prob:
            if rng.random() < 0.5:
                outside = rng.randrange(model.nodes, 1 << model.nodes)
                return b.new_packet(src_ep, cls, 0, outside, port, flits, True)
            return b.new_packet(src_ep, cls, 1, 0, port, min(flits, depth), True)
        if mcast_prob and rng.random() < mcast_prob:
            mask = rng.randrange(1, 1 << model.nodes)
            if overlong_prob and rng.random() < overlong_prob:
                # 1 to 3 beats past depth: delivered truncated to depth beats, counted in errors.
                return b.new_packet(src_ep, cls, 1, mask, port, rng.randint(depth + 1, depth + 3))
            return b.new_packet(src_ep, cls, 1, mask, port, min(flits, depth))
        return b.new_packet(src_ep, cls, 0, model.destination(pattern, node, rng), port, flits)

    async def phase(rate):
        t0 = b.cycle
        warmup = p.get("warmup", cycles // 5)
        b.window = (t0 + warmup, t0 + cycles)
        b.lat, b.eject_flits_window, b.copies_delivered = [], 0, 0
        link0, bad0, long0, uid0 = int(dut.link_flits.value), b.bad_sent, b.overlong_sent, b.uid
        pgen = min(1.0, rate / ((fmin + fmax) / 2))
        idle = 0
        while True:
            if b.cycle < t0 + cycles:
                for s in sources:
                    if rng.random() < pgen:
                        generate(s)
            moved, changed = await b.step(RisingEdge(dut.clk))
            b.drive(changed, ready_prob, rng)
            idle = 0 if moved else idle + 1
            if b.outstanding and idle >= watchdog:
                raise AssertionError(f"watchdog: nothing moved for {watchdog} cycles at cycle {b.cycle} "
                                     f"with {b.outstanding} packets/copies outstanding")
            if b.cycle >= t0 + cycles and not b.outstanding:
                break
            if b.cycle >= t0 + cycles + drain_limit:
                raise AssertionError(f"not drained {drain_limit} cycles after injection stopped: "
                                     f"{b.outstanding} outstanding")
        drained_at = b.cycle - t0
        for _ in range(3):
            await RisingEdge(dut.clk)
        return {
            "offered": rate, "cycles": cycles, "warmup": warmup, "drained_at": drained_at,
            "generated": b.uid - uid0, "bad": b.bad_sent - bad0, "overlong": b.overlong_sent - long0,
            "copies_delivered": b.copies_delivered,
            "link_traversals": int(dut.link_flits.value) - link0,
            "window_eject_flits": b.eject_flits_window,
            "accepted": b.eject_flits_window / (len(sources) * max(1, cycles - warmup)),
            "latencies": [(h, lat) for h, lat, meas, mc, _ in b.lat if meas and not mc],
            "mcast_latencies": [(h, lat) for h, lat, meas, mc, last in b.lat if meas and mc and last],
        }

    points = []
    for rate in rates:
        points.append(await phase(rate))
        pt = points[-1]
        dut._log.info(f"rate {rate}: accepted {pt['accepted']:.3f}, {pt['generated']} packets, "
                      f"drained {pt['drained_at']} cycles after start")
    errors_hw = int(dut.errors.value)
    leftovers = sum(len(q) for q in b.expect.values())
    result = dict(points[0], file="result.json", endpoints=E, points=points, errors_hw=errors_hw,
                  errors=b.errors, bad_total=b.bad_sent, overlong_total=b.overlong_sent)
    write_result(result)
    assert not b.errors, "scoreboard:\n  " + "\n  ".join(b.errors)
    assert leftovers == 0, f"{leftovers} expected copies never arrived"
    assert errors_hw == b.bad_sent + b.overlong_sent, \
        f"error counter {errors_hw}: malformed packets {b.bad_sent}, over-long multicasts {b.overlong_sent}"


@cocotb.test()
async def broadcast(dut):
    p = tessera.tb.params()
    await reset(dut)
    b = Bench(dut, p)
    model, lp = b.model, b.lp
    src = p.get("src", 0)
    flits = p.get("flits", 1)
    out = {"file": "broadcast.json", "src": src}

    async def one(mcast, dest):
        start_links = int(dut.link_flits.value)
        pk = b.new_packet(src * lp, 0, mcast, dest, 0, flits)
        b.drive(True, 1.0, None)
        for _ in range(1000):
            _, changed = await b.step(RisingEdge(dut.clk))
            b.drive(changed, 1.0, None)
            if not b.outstanding:
                break
        assert not b.outstanding, "broadcast probe did not complete"
        for _ in range(3):
            await RisingEdge(dut.clk)
        lats = [lat for h, lat, *_ in b.lat[-len(pk.dests):]]
        return max(lats), int(dut.link_flits.value) - start_links

    far = model.farthest(src)
    out["unicast_latency"], out["unicast_links"] = await one(0, far)
    out["unicast_hops"] = model.hops(src, far)
    out["multicast_latency"], out["multicast_links"] = await one(1, (1 << model.nodes) - 1)
    out["tree_edges"] = len(model.xy_tree(src, range(model.nodes))) * flits
    write_result(out)
    assert not b.errors, "scoreboard:\n  " + "\n  ".join(b.errors)
    assert out["multicast_links"] == out["tree_edges"], out
    assert out["unicast_links"] == out["unicast_hops"] * flits, out
