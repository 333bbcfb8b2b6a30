// The fabric's native simulation harness: the Verilated fabric, its AXI4 memory and its host port,
// all in C++, driven from Python through the small C API at the end of this file (ctypes;
// tessera/tools/native.py). docs/simulation.md describes the design.
//
// Built per design by tessera.tools.native: Verilator compiles the fabric's Verilog with this file
// and two generated headers (top.h: the model's class and memory ports; bind_ports.h: which of
// the top module's ports the memory and the host drive) into one shared library.
//
// Timing contract: the memory and the host reproduce, edge for edge, the cocotb models that the
// verification path uses (tb/common/axi_memory.py without randomness, and cocotbext-axi's
// AxiLiteMaster as tb/fabric/host.py drives it), so that both paths give the same cycle counts:
//
//   * Sampling: at each rising edge a channel transfers when its valid and ready were both high
//     before the edge; right after the edge the models drive their outputs for the next cycle.
//     One edge here is: transfers (from the settled outputs), clk = 1 and eval, drive the new
//     inputs, clk = 0 and eval.
//   * Memory port (latency L >= 1, bandwidth rate bytes/cycle, error ranges): AR/AW always ready;
//     a burst whose AR transfers at edge t offers its first beat for edge t + L, then one beat per
//     cycle while the bucket allows; W ready while an AW waits for data and the bucket allows; B
//     at edge t + L after the last W beat's edge t; SLVERR on bursts touching an error range.
//   * Host (AXI4-Lite master): an access that begins after edge E raises its valid(s) after edge
//     E + 1, drops each after its transfer; RREADY and BREADY are always high; the access ends at
//     the edge where its R (B) transfers, and the next one may begin there. wait(n) ends n edges on.

#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "verilated.h"
#ifdef TESSERA_TRACE
#include "verilated_vcd_c.h"
#endif
#include "top.h"  // generated: the model's header, TOP_CLASS, MEM_PORTS, MEM_DATA_BYTES

namespace {

constexpr int OKAY = 0;
constexpr int SLVERR = 2;
constexpr int PAGE_BITS = 12;
constexpr uint64_t PAGE = uint64_t(1) << PAGE_BITS;

// ---- a port of the Verilated model: pointer to its storage and its width ----------------------
struct Sig {
    void* p = nullptr;
    int width = 0;
    uint64_t get() const {
        if (width <= 8) return *static_cast<uint8_t*>(p);
        if (width <= 16) return *static_cast<uint16_t*>(p);
        if (width <= 32) return *static_cast<uint32_t*>(p);
        if (width <= 64) return *static_cast<uint64_t*>(p);
        const uint32_t* w = static_cast<uint32_t*>(p);  // VlWide: 32-bit words, least significant first
        return uint64_t(w[0]) | (uint64_t(w[1]) << 32);
    }
    void set(uint64_t v) const {
        if (width <= 8) *static_cast<uint8_t*>(p) = uint8_t(v);
        else if (width <= 16) *static_cast<uint16_t*>(p) = uint16_t(v);
        else if (width <= 32) *static_cast<uint32_t*>(p) = uint32_t(v);
        else if (width <= 64) *static_cast<uint64_t*>(p) = v;
        else {
            uint32_t* w = static_cast<uint32_t*>(p);
            w[0] = uint32_t(v);
            w[1] = uint32_t(v >> 32);
        }
    }
    // little-endian bytes (x86: the storage's own byte order, VlWide included)
    void get_bytes(uint8_t* out, int n) const { std::memcpy(out, p, n); }
    void set_bytes(const uint8_t* in, int n) const { std::memcpy(p, in, n); }
};

struct AxiPortSigs {  // the fabric's AXI4 master port, as the memory sees it
    Sig arvalid, araddr, arlen, arsize, arid, arready, rvalid, rdata, rresp, rlast, rid, rready;
    Sig awvalid, awaddr, awlen, awsize, awid, awready, wvalid, wdata, wstrb, wlast, wready;
    Sig bvalid, bresp, bid, bready;
};

struct AxiLiteSigs {  // the fabric's AXI4-Lite slave port, as the host sees it
    Sig awvalid, awaddr, awready, wvalid, wdata, wstrb, wready, bvalid, bresp, bready;
    Sig arvalid, araddr, arready, rvalid, rdata, rresp, rready;
};

#include "bind_ports.h"  // generated: bind_ports(top, mem, host)

// ---- the memory: a sparse byte store shared by the ports ---------------------------------------
class Store {
  public:
    void read(uint64_t addr, uint8_t* out, uint64_t n) const {
        uint64_t pos = 0;
        while (pos < n) {
            uint64_t a = addr + pos, off = a & (PAGE - 1), take = std::min(n - pos, PAGE - off);
            auto it = pages_.find(a >> PAGE_BITS);
            if (it == pages_.end()) std::memset(out + pos, 0, take);
            else std::memcpy(out + pos, it->second.data() + off, take);
            pos += take;
        }
    }
    void write(uint64_t addr, const uint8_t* in, uint64_t n) {
        uint64_t pos = 0;
        while (pos < n) {
            uint64_t a = addr + pos, off = a & (PAGE - 1), take = std::min(n - pos, PAGE - off);
            auto& page = pages_[a >> PAGE_BITS];
            if (page.empty()) page.assign(PAGE, 0);
            std::memcpy(page.data() + off, in + pos, take);
            pos += take;
        }
    }
    // One beat of n bytes; strb: n strobe bits, little-endian bytes (bit j of the beat: lane j).
    void write_lanes(uint64_t addr, const uint8_t* data, const uint8_t* strb, int n) {
        bool all = true;
        for (int j = 0; j < n && all; j++) all = strb[j / 8] >> (j % 8) & 1;
        if (all) {
            write(addr, data, n);
            return;
        }
        for (int j = 0; j < n; j++)
            if (strb[j / 8] >> (j % 8) & 1) write(addr + j, data + j, 1);
    }

  private:
    std::unordered_map<uint64_t, std::vector<uint8_t>> pages_;
};

struct Burst {
    uint64_t addr;
    uint32_t beats, size, k = 0;
    uint64_t id;
    bool err = false;
    uint64_t due = 0;  // the edge after which it may be offered (R, B)
    uint64_t beat_addr() const { return k == 0 ? addr : ((addr >> size) + k) << size; }
    uint64_t end() const { return ((addr >> size) + beats) << size; }
};

struct Counters {  // per port; the Python side sums them
    uint64_t r_beats = 0, w_beats = 0, reads = 0, writes = 0, errors = 0;
};

// One AXI4 slave port of the memory (tb/common/axi_memory.py's AxiPort without rng).
class MemPort {
  public:
    MemPort(AxiPortSigs s, Store* store, int data_bytes, int latency, double rate)
        : s_(s), store_(store), D_(data_bytes), L_(latency < 1 ? 1 : latency), rate_(rate),
          limited_(rate > 0), cap_(limited_ ? std::max(2.0 * data_bytes, rate) : 0), tokens_(cap_) {
        s_.arready.set(1);
        s_.awready.set(1);
        s_.wready.set(0);
        for (const Sig* g : {&s_.rvalid, &s_.bvalid, &s_.rresp, &s_.bresp, &s_.rlast, &s_.rid, &s_.bid})
            g->set(0);
        std::vector<uint8_t> zero(D_, 0);
        s_.rdata.set_bytes(zero.data(), D_);
        beat_.resize(D_);
        strb_.assign((D_ + 7) / 8, 0xFF);
    }
    std::vector<std::pair<uint64_t, uint64_t>> error_ranges;
    Counters c;

    // The transfers of this edge (before the edge is evaluated: the values it sees).
    void transfers(uint64_t cycle) {
        if (s_.arvalid.get()) {  // ARREADY always high
            Burst b = burst(s_.araddr, s_.arlen, s_.arsize, s_.arid);
            b.due = cycle + L_ - 1;
            reads_.push_back(b);
            c.reads++;
        }
        if (s_.awvalid.get()) aws_.push_back(burst(s_.awaddr, s_.awlen, s_.awsize, s_.awid));
        if (w_ready_ && s_.wvalid.get()) {
            if (limited_) tokens_ -= D_;
            c.w_beats++;
            s_.wdata.get_bytes(beat_.data(), D_);
            if (s_.wstrb.p) s_.wstrb.get_bytes(strb_.data(), (D_ + 7) / 8);  // else: all lanes
            take_w(cycle, s_.wlast.get() != 0);
        }
        if (r_offered_ && s_.rready.get()) {
            if (limited_) tokens_ -= D_;
            c.r_beats++;
            Burst& r = reads_.front();
            if (++r.k == r.beats) {
                c.errors += r.err;
                reads_.pop_front();
            }
            r_offered_ = false;
        }
        if (b_offered_ && s_.bready.get()) {
            bs_.pop_front();
            b_offered_ = false;
        }
        if (limited_) tokens_ = std::min(cap_, tokens_ + rate_);
    }

    // Drive the next cycle (after the edge is evaluated). A raised valid is held until it transfers.
    void drive(uint64_t cycle) {
        if (!r_offered_ && (!limited_ || tokens_ >= D_) && !reads_.empty() && reads_.front().due <= cycle) {
            const Burst& r = reads_.front();
            if (r.err) std::fill(beat_.begin(), beat_.end(), 0);
            else store_->read(r.beat_addr() / D_ * D_, beat_.data(), D_);
            s_.rdata.set_bytes(beat_.data(), D_);
            s_.rresp.set(r.err ? SLVERR : OKAY);
            s_.rid.set(r.id);
            s_.rlast.set(r.k == r.beats - 1);
            r_offered_ = true;
        }
        s_.rvalid.set(r_offered_);
        if (!b_offered_ && !bs_.empty() && bs_.front().due <= cycle) {
            s_.bid.set(bs_.front().id);
            s_.bresp.set(bs_.front().err ? SLVERR : OKAY);
            b_offered_ = true;
        }
        s_.bvalid.set(b_offered_);
        w_ready_ = !aws_.empty() && (!limited_ || tokens_ >= (r_offered_ ? 2 * D_ : D_));
        s_.wready.set(w_ready_);
    }

  private:
    Burst burst(const Sig& addr, const Sig& len, const Sig& size, const Sig& id) const {
        Burst b;
        b.addr = addr.get();
        b.beats = uint32_t(len.get()) + 1;
        b.size = size.p ? uint32_t(size.get()) : uint32_t(__builtin_ctz(D_));
        b.id = id.get();
        uint64_t lo = b.addr, hi = b.end();
        for (auto& r : error_ranges)
            if (lo < r.second && hi > r.first) b.err = true;
        return b;
    }

    void take_w(uint64_t cycle, bool last) {
        // Without eager WREADY a W beat is taken only while an AW waits, so it applies at once.
        Burst& b = aws_.front();
        if (!b.err) store_->write_lanes(b.beat_addr() / D_ * D_, beat_.data(), strb_.data(), D_);
        b.k++;
        if (last != (b.k == b.beats)) protocol_error = "WLAST does not match AWLEN";
        if (last) {
            c.writes++;
            c.errors += b.err;
            b.due = cycle + L_ - 1;
            bs_.push_back(b);
            aws_.pop_front();
        }
    }

    AxiPortSigs s_;
    Store* store_;
    int D_, L_;
    double rate_;
    bool limited_;
    double cap_, tokens_;
    std::deque<Burst> reads_, aws_, bs_;
    bool r_offered_ = false, b_offered_ = false, w_ready_ = false;
    std::vector<uint8_t> beat_, strb_;

  public:
    const char* protocol_error = nullptr;
};

// The host's AXI4-Lite master: one access at a time (see the timing contract above).
class Host {
  public:
    explicit Host(AxiLiteSigs s) : s_(s) {
        for (const Sig* g : {&s_.awvalid, &s_.wvalid, &s_.arvalid, &s_.awaddr, &s_.araddr, &s_.wdata})
            g->set(0);
        s_.wstrb.set(0xF);
        s_.rready.set(1);
        s_.bready.set(1);
    }
    enum Kind { NONE, READ, WRITE };
    void begin(Kind kind, uint32_t addr, uint32_t value) {
        kind_ = kind, addr_ = addr, value_ = value, pending_ = true, done_ = false;
        a_up_ = w_up_ = a_done_ = w_done_ = false;  // nothing left over from an access that timed out
    }
    bool done() const { return done_; }
    uint32_t result() const { return result_; }
    int resp() const { return resp_; }

    void transfers() {
        if (kind_ == NONE) return;
        if (a_up_ && (kind_ == READ ? s_.arready.get() : s_.awready.get())) a_up_ = false, a_done_ = true;
        if (w_up_ && s_.wready.get()) w_up_ = false, w_done_ = true;
        if (kind_ == READ && a_done_ && s_.rvalid.get()) {
            result_ = uint32_t(s_.rdata.get()), resp_ = int(s_.rresp.get()), finish();
        } else if (kind_ == WRITE && a_done_ && w_done_ && s_.bvalid.get()) {
            resp_ = int(s_.bresp.get()), finish();
        }
    }
    void drive() {
        if (pending_) {  // the access began before the edge just evaluated: raise its valid(s) now
            pending_ = false;
            a_up_ = true;
            w_up_ = kind_ == WRITE;
        }
        s_.arvalid.set(kind_ == READ && a_up_);
        s_.araddr.set(kind_ == READ ? addr_ : 0);
        s_.awvalid.set(kind_ == WRITE && a_up_);
        s_.awaddr.set(kind_ == WRITE ? addr_ : 0);
        s_.wvalid.set(w_up_);
        s_.wdata.set(value_);
    }

  private:
    void finish() {
        kind_ = NONE, done_ = true, a_done_ = w_done_ = false;
    }
    AxiLiteSigs s_;
    Kind kind_ = NONE;
    uint32_t addr_ = 0, value_ = 0, result_ = 0;
    int resp_ = 0;
    bool pending_ = false, a_up_ = false, w_up_ = false, a_done_ = false, w_done_ = false, done_ = false;
};

using Clock = std::chrono::steady_clock;

struct Sim {
    std::unique_ptr<VerilatedContext> ctx;
    std::unique_ptr<TOP_CLASS> top;
    Store store;
    std::vector<std::unique_ptr<MemPort>> ports;
    std::unique_ptr<Host> host;
    uint64_t cycle = 0;
    double eval_s = 0;  // wall time inside the model's eval()
    std::string error;
#ifdef TESSERA_TRACE
    std::unique_ptr<VerilatedVcdC> vcd;
#endif

    void eval() {
        auto t0 = Clock::now();
        top->eval();
        eval_s += std::chrono::duration<double>(Clock::now() - t0).count();
#ifdef TESSERA_TRACE
        if (vcd) vcd->dump(ctx->time());
#endif
        ctx->timeInc(5);
    }
    // One clock cycle: transfers, rising edge, the models drive, falling edge.
    void edge() {
        cycle++;
        for (auto& p : ports) p->transfers(cycle);
        host->transfers();
        top->clk = 1;
        eval();
        for (auto& p : ports) p->drive(cycle);
        host->drive();
        top->clk = 0;
        eval();
    }
    const char* protocol_error() const {
        for (auto& p : ports)
            if (p->protocol_error) return p->protocol_error;
        return nullptr;
    }
};

}  // namespace

// ---- C API (ctypes) ----------------------------------------------------------------------------
extern "C" {

// A new simulation: the memory's ``latency`` (cycles) and ``rate`` (bytes per cycle per port, <= 0:
// no limit); ``vcd``: a VCD file to write (builds with tracing only), or null.
__attribute__((visibility("default"))) void* tessera_new(int latency, double rate, const char* vcd) {
    auto* sim = new Sim();
    sim->ctx = std::make_unique<VerilatedContext>();
    sim->ctx->randReset(0);
    sim->top = std::make_unique<TOP_CLASS>(sim->ctx.get(), "top");
    std::vector<AxiPortSigs> mem;
    AxiLiteSigs host;
    bind_ports(sim->top.get(), mem, host);
    for (auto& s : mem) sim->ports.push_back(std::make_unique<MemPort>(s, &sim->store, MEM_DATA_BYTES, latency, rate));
    sim->host = std::make_unique<Host>(host);
#ifdef TESSERA_TRACE
    if (vcd && *vcd) {
        sim->ctx->traceEverOn(true);
        sim->vcd = std::make_unique<VerilatedVcdC>();
        sim->top->trace(sim->vcd.get(), 99);
        sim->vcd->open(vcd);
    }
#else
    (void)vcd;
#endif
    sim->top->clk = 0;
    sim->top->rst = 1;
    sim->eval();
    return sim;
}

__attribute__((visibility("default"))) void tessera_free(void* h) {
    auto* sim = static_cast<Sim*>(h);
#ifdef TESSERA_TRACE
    if (sim->vcd) sim->vcd->close();
#endif
    sim->top->final();
    delete sim;
}

__attribute__((visibility("default"))) int tessera_mem_ports() { return MEM_PORTS; }
__attribute__((visibility("default"))) int tessera_data_bytes() { return MEM_DATA_BYTES; }

// Bursts touching [lo, hi) get SLVERR on every port (looked at when their AR / AW transfers).
__attribute__((visibility("default"))) void tessera_error_range(void* h, uint64_t lo, uint64_t hi) {
    for (auto& p : static_cast<Sim*>(h)->ports) p->error_ranges.emplace_back(lo, hi);
}

// Reset as the cocotb testbench does: rst high for 4 edges, then 2 edges with rst low.
__attribute__((visibility("default"))) void tessera_reset(void* h) {
    auto* sim = static_cast<Sim*>(h);
    sim->top->rst = 1;
    for (int i = 0; i < 4; i++) sim->edge();
    sim->top->rst = 0;  // driven after the 4th edge, as the testbench's write is
    sim->top->eval();
    for (int i = 0; i < 2; i++) sim->edge();
}

// Let ``n`` cycles pass.
__attribute__((visibility("default"))) void tessera_wait(void* h, uint64_t n) {
    auto* sim = static_cast<Sim*>(h);
    for (uint64_t i = 0; i < n; i++) sim->edge();
}

static int host_access(Sim* sim, Host::Kind kind, uint32_t addr, uint32_t value, uint32_t* out, uint64_t timeout) {
    sim->host->begin(kind, addr, value);
    for (uint64_t i = 0; i < timeout; i++) {
        sim->edge();
        if (sim->host->done()) {
            if (out) *out = sim->host->result();
            return sim->host->resp();
        }
    }
    return -1;
}

// One AXI4-Lite access; returns its response (0 OKAY), or -1 if it did not end in ``timeout`` cycles.
__attribute__((visibility("default"))) int tessera_read(void* h, uint32_t addr, uint32_t* out, uint64_t timeout) {
    return host_access(static_cast<Sim*>(h), Host::READ, addr, 0, out, timeout);
}
__attribute__((visibility("default"))) int tessera_write(void* h, uint32_t addr, uint32_t value, uint64_t timeout) {
    return host_access(static_cast<Sim*>(h), Host::WRITE, addr, value, nullptr, timeout);
}

// The memory's backdoor (no simulated time).
__attribute__((visibility("default"))) void tessera_mem_write(void* h, uint64_t addr, const uint8_t* data, uint64_t n) {
    static_cast<Sim*>(h)->store.write(addr, data, n);
}
__attribute__((visibility("default"))) void tessera_mem_read(void* h, uint64_t addr, uint8_t* out, uint64_t n) {
    static_cast<Sim*>(h)->store.read(addr, out, n);
}

// Counters of memory port ``p``: r_beats, w_beats, reads, writes, errors.
__attribute__((visibility("default"))) void tessera_mem_counters(void* h, int p, uint64_t* out) {
    const Counters& c = static_cast<Sim*>(h)->ports.at(p)->c;
    out[0] = c.r_beats, out[1] = c.w_beats, out[2] = c.reads, out[3] = c.writes, out[4] = c.errors;
}

__attribute__((visibility("default"))) uint64_t tessera_cycle(void* h) { return static_cast<Sim*>(h)->cycle; }
__attribute__((visibility("default"))) double tessera_eval_seconds(void* h) { return static_cast<Sim*>(h)->eval_s; }

// The memory's protocol error (WLAST against AWLEN), or null.
__attribute__((visibility("default"))) const char* tessera_protocol_error(void* h) {
    return static_cast<Sim*>(h)->protocol_error();
}

// The model alone: ``n`` cycles of clk toggling and eval, inputs unchanged (no memory, no host).
__attribute__((visibility("default"))) void tessera_toggle_only(void* h, uint64_t n) {
    auto* sim = static_cast<Sim*>(h);
    for (uint64_t i = 0; i < n; i++) {
        sim->top->clk = 1;
        sim->top->eval();
        sim->top->clk = 0;
        sim->top->eval();
    }
}

}  // extern "C"
