"""Every parameter set of Tessera, as frozen dataclasses validated on construction.

A configuration is one immutable value. Presets are derived from the default with
``dataclasses.replace``; they are names for configurations, not special cases, so every
parameter can be changed on its own (``replace(preset("tiny").tensor, rows=8)``).

An invalid value raises ``ValueError`` naming the parameter and what is allowed, before any
hardware is elaborated.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = [
    "NumericConfig",
    "TensorConfig",
    "NocConfig",
    "CacheConfig",
    "TileConfig",
    "FabricConfig",
    "PRESETS",
    "preset",
    "fabric_from_dict",
    "is_pow2",
]


def is_pow2(n: int) -> bool:
    return isinstance(n, int) and n > 0 and (n & (n - 1)) == 0


def _int_in(owner: str, name: str, value, lo: int, hi: int | None = None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{owner}.{name} must be an integer, not {value!r}")
    if value < lo or (hi is not None and value > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{owner}.{name} = {value} is out of range; allowed: {allowed}")


def _pow2(owner: str, name: str, value, lo: int = 1, hi: int | None = None):
    _int_in(owner, name, value, lo, hi)
    if not is_pow2(value):
        span = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{owner}.{name} = {value} must be a power of two; allowed: powers of two {span}")


def _one_of(owner: str, name: str, value, allowed):
    if value not in allowed:
        allowed_text = ", ".join(map(str, allowed))
        raise ValueError(f"{owner}.{name} = {value!r} is not allowed; allowed: {allowed_text}")


@dataclass(frozen=True)
class NumericConfig:
    """Pipeline depths of the numeric units (``rtl/numeric``).

    ``fmul_latency`` and ``fadd_latency`` are the cycles from operands to result of the
    BF16 x BF16 -> FP32 multiplier and the FP32 adder; ``mac8_latency`` that of the INT8 MAC.
    """

    fmul_latency: int = 2
    fadd_latency: int = 3
    mac8_latency: int = 1

    def __post_init__(self):
        _int_in("NumericConfig", "fmul_latency", self.fmul_latency, 1, 4)
        _int_in("NumericConfig", "fadd_latency", self.fadd_latency, 1, 4)
        _int_in("NumericConfig", "mac8_latency", self.mac8_latency, 1, 2)


@dataclass(frozen=True)
class TensorConfig:
    """The tensor core: an ``rows`` x ``cols`` output-stationary systolic array."""

    rows: int = 8
    cols: int = 8
    max_k: int = 4096  # largest reduction length one MATMUL accepts
    numeric: NumericConfig = field(default_factory=NumericConfig)
    max_m: int = 4096  # largest M (rows of A and D) one MATMUL accepts
    max_n: int = 4096  # largest N (columns of B and D) one MATMUL accepts

    def __post_init__(self):
        _int_in("TensorConfig", "rows", self.rows, 1, 32)
        _int_in("TensorConfig", "cols", self.cols, 1, 32)
        _int_in("TensorConfig", "max_k", self.max_k, 1, 1 << 20)
        _int_in("TensorConfig", "max_m", self.max_m, 1, 1 << 16)
        _int_in("TensorConfig", "max_n", self.max_n, 1, 1 << 16)
        if not isinstance(self.numeric, NumericConfig):
            raise ValueError(f"TensorConfig.numeric must be a NumericConfig, not {self.numeric!r}")

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def interleave(self) -> int:
        """Independent output blocks each PE works on round-robin: the accumulation loop length,
        max(fadd_latency, mac8_latency), so that a pipelined adder never stalls the array."""
        return max(self.numeric.fadd_latency, self.numeric.mac8_latency)


@dataclass(frozen=True)
class NocConfig:
    """The 2D-mesh network-on-chip (``rtl/noc``).

    ``vcs`` is the number of virtual channels per message class (request, response);
    ``depth`` the input buffer depth per VC in flits; ``local_ports`` the endpoints per router.
    """

    width: int = 4
    height: int = 4
    flit_bits: int = 128
    vcs: int = 2
    depth: int = 4
    local_ports: int = 2

    def __post_init__(self):
        _int_in("NocConfig", "width", self.width, 1, 8)
        _int_in("NocConfig", "height", self.height, 1, 8)
        _int_in("NocConfig", "flit_bits", self.flit_bits, 32, 1024)
        _int_in("NocConfig", "vcs", self.vcs, 1, 4)
        _int_in("NocConfig", "depth", self.depth, 2, 64)
        _int_in("NocConfig", "local_ports", self.local_ports, 1, 4)

    @property
    def nodes(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class CacheConfig:
    """One L2 slice (``rtl/cache``): set-associative, write-back, write-allocate, true LRU.

    ``data_bytes`` is the width of the AXI4 memory data bus and of the request/response data.
    """

    sets: int = 128
    ways: int = 8
    line_bytes: int = 64
    mshrs: int = 8
    data_bytes: int = 16
    addr_bits: int = 32
    id_bits: int = 8  # requester tag carried from a read request to its response
    dest_bits: int = 16  # multicast destination set (node bitmask) carried to the response
    queue_depth: int = 32  # requests parked on MSHRs (primary and secondary misses) awaiting their line

    def __post_init__(self):
        _pow2("CacheConfig", "sets", self.sets, 1, 1 << 16)
        _int_in("CacheConfig", "ways", self.ways, 1, 16)
        _pow2("CacheConfig", "line_bytes", self.line_bytes, 4, 1024)
        _int_in("CacheConfig", "mshrs", self.mshrs, 1, 32)
        _pow2("CacheConfig", "data_bytes", self.data_bytes, 1, 128)
        _int_in("CacheConfig", "addr_bits", self.addr_bits, 12, 64)
        _int_in("CacheConfig", "id_bits", self.id_bits, 1, 32)
        _int_in("CacheConfig", "dest_bits", self.dest_bits, 1, 64)
        _int_in("CacheConfig", "queue_depth", self.queue_depth, 2, 1024)
        if self.line_bytes * self.sets > (1 << self.addr_bits):
            raise ValueError(f"CacheConfig.addr_bits = {self.addr_bits} cannot address {self.sets} sets of"
                             f" {self.line_bytes}-byte lines")
        if self.line_bytes < self.data_bytes:
            raise ValueError(
                f"CacheConfig.line_bytes = {self.line_bytes} is smaller than data_bytes = {self.data_bytes};"
                " a line must hold at least one data beat"
            )

    @property
    def size_bytes(self) -> int:
        return self.sets * self.ways * self.line_bytes

    @property
    def offset_bits(self) -> int:
        return (self.line_bytes - 1).bit_length()

    @property
    def index_bits(self) -> int:
        return (self.sets - 1).bit_length()

    @property
    def tag_bits(self) -> int:
        return self.addr_bits - self.index_bits - self.offset_bits

    @property
    def beats_per_line(self) -> int:
        return self.line_bytes // self.data_bytes


@dataclass(frozen=True)
class TileConfig:
    """A compute tile's local memories and command sequencer (``rtl/tile``, ``docs/isa.md``).

    ``word_bytes`` is the width of one scratchpad / accumulator word, and so the alignment unit
    of every address and stride in the tile ISA. ``scratchpad_read_ports`` read ports serve the
    tensor core's operand fetch (A and B). ``max_outstanding`` bounds the LOADs, STOREs and
    MATMULs (each class counted separately) the sequencer has issued but not seen complete.
    ``sfu`` gives every lane of the vector engine its special-function unit (exp, recip, rsqrt,
    gelu: 35 FP32 adders and 42 multipliers a lane; docs/vector.md); without it a VECTOR asking
    for one stops the tile with FAULT.
    """

    scratchpad_bytes: int = 64 * 1024
    scratchpad_banks: int = 4
    accumulator_bytes: int = 16 * 1024
    word_bytes: int = 16
    scratchpad_read_ports: int = 2
    max_outstanding: int = 15
    cmd_queue_depth: int = 128  # instructions the host can queue per tile before starting it
    sfu: bool = False

    def __post_init__(self):
        if not isinstance(self.sfu, bool):
            raise ValueError(f"TileConfig.sfu = {self.sfu!r} must be True or False")
        _pow2("TileConfig", "scratchpad_bytes", self.scratchpad_bytes, 1024, 1 << 24)
        _pow2("TileConfig", "scratchpad_banks", self.scratchpad_banks, 1, 64)
        _pow2("TileConfig", "accumulator_bytes", self.accumulator_bytes, 256, 1 << 24)
        _pow2("TileConfig", "word_bytes", self.word_bytes, 4, 128)
        _int_in("TileConfig", "scratchpad_read_ports", self.scratchpad_read_ports, 1, 4)
        _int_in("TileConfig", "max_outstanding", self.max_outstanding, 1, 15)
        _int_in("TileConfig", "cmd_queue_depth", self.cmd_queue_depth, 2, 4096)
        if self.scratchpad_bytes < self.scratchpad_banks * self.word_bytes:
            raise ValueError(
                f"TileConfig.scratchpad_banks = {self.scratchpad_banks} is too many for scratchpad_bytes"
                f" = {self.scratchpad_bytes} and word_bytes = {self.word_bytes};"
                " every bank needs at least one word"
            )
        if self.accumulator_bytes < self.word_bytes:
            raise ValueError(
                f"TileConfig.word_bytes = {self.word_bytes} is larger than"
                f" accumulator_bytes = {self.accumulator_bytes}"
            )

    @property
    def bank_bytes(self) -> int:
        return self.scratchpad_bytes // self.scratchpad_banks

    @property
    def scratchpad_words(self) -> int:
        return self.scratchpad_bytes // self.word_bytes

    @property
    def accumulator_words(self) -> int:
        return self.accumulator_bytes // self.word_bytes


@dataclass(frozen=True)
class FabricConfig:
    """A whole fabric: the mesh of tiles, each with a tensor core, scratchpad and L2 slice."""

    name: str = "default"
    tensor: TensorConfig = field(default_factory=TensorConfig)
    noc: NocConfig = field(default_factory=NocConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    tile: TileConfig = field(default_factory=TileConfig)
    mem_ports: int = 1

    def __post_init__(self):
        for name, cls in (("tensor", TensorConfig), ("noc", NocConfig), ("cache", CacheConfig),
                          ("tile", TileConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"FabricConfig.{name} must be a {cls.__name__}, not {getattr(self, name)!r}")
        _int_in("FabricConfig", "mem_ports", self.mem_ports, 1, self.noc.nodes)
        self._check_fabric()

    def _check_fabric(self):
        """Cross-subsystem rules of the fabric (docs/fabric.md, "Parameters")."""
        noc, cache, tile, tensor = self.noc, self.cache, self.tile, self.tensor
        nodes = noc.nodes
        if not is_pow2(nodes):
            raise ValueError(f"FabricConfig.noc: width x height = {nodes} tiles must be a power of two"
                             " (addresses are line-interleaved over the L2 slices by address bits)")
        if self.noc.nodes % self.mem_ports:
            raise ValueError(f"FabricConfig.mem_ports = {self.mem_ports} must divide the {nodes} L2 slices")
        if noc.local_ports < 2:
            raise ValueError(f"FabricConfig.noc.local_ports = {noc.local_ports}: a fabric needs 2"
                             " (port 0 the compute tile, port 1 the L2 slice)")
        if not (noc.flit_bits == 8 * cache.data_bytes == 8 * tile.word_bytes):
            raise ValueError(
                f"FabricConfig: noc.flit_bits = {noc.flit_bits}, cache.data_bytes = {cache.data_bytes} and"
                f" tile.word_bytes = {tile.word_bytes} must describe one word (flit_bits = 8 * data_bytes"
                " = 8 * word_bytes)")
        if not (is_pow2(tensor.rows) and is_pow2(tensor.cols)):
            raise ValueError(f"FabricConfig.tensor: rows = {tensor.rows} and cols = {tensor.cols} must be"
                             " powers"
                             " of two in a fabric (operand steps and result rows align to words)")
        if 2 * max(tensor.rows, tensor.cols) > tile.word_bytes:
            raise ValueError(
                f"FabricConfig.tile.word_bytes = {tile.word_bytes} is too narrow for a {tensor.rows} x"
                f" {tensor.cols} tensor core: one BF16 operand step ({2 * max(tensor.rows, tensor.cols)}"
                " bytes) must fit in one scratchpad word")
        if tile.word_bytes > 64:
            raise ValueError(f"FabricConfig.tile.word_bytes = {tile.word_bytes}: the vector engine's lanes"
                             " (one per 4 bytes) share rowsum's 16 partial sums, so at most 64 (16 lanes)")
        if cache.dest_bits < nodes:
            raise ValueError(f"FabricConfig.cache.dest_bits = {cache.dest_bits} cannot hold a bitmask of"
                             f" {nodes} tiles")
        if cache.addr_bits > 32:
            raise ValueError(f"FabricConfig.cache.addr_bits = {cache.addr_bits}: the tile ISA has 32-bit"
                             " memory addresses; allowed 12..32")
        if cache.line_bytes * nodes * cache.sets > (1 << cache.addr_bits):
            raise ValueError(f"FabricConfig.cache.addr_bits = {cache.addr_bits} is too small for"
                             f" {nodes} slices of {cache.sets} sets of {cache.line_bytes}-byte lines")
        # Imported here: tessera.rtl.fabric.messages depends on this module.
        from tessera.rtl.fabric.messages import req_head_bits, tag_bits

        if cache.id_bits < tag_bits(self):
            raise ValueError(f"FabricConfig.cache.id_bits = {cache.id_bits} is too small for the tile's"
                             f" response tag ({tag_bits(self)} bits)")
        if req_head_bits(self) > noc.flit_bits:
            raise ValueError(
                f"FabricConfig: a request header ({req_head_bits(self)} bits) does not fit in one"
                f" {noc.flit_bits}-bit flit; lower cache.addr_bits or cache.id_bits, or widen the flit")

    @property
    def tiles(self) -> int:
        return self.noc.nodes


_DEFAULT = FabricConfig(
    cache=CacheConfig(id_bits=24),
    # 64 KiB of accumulators: one 128 x 128 FP32 output tile, so a 512 x 512 GEMM needs one pass.
    tile=TileConfig(accumulator_bytes=64 * 1024),
    mem_ports=4,  # 4 x 16 bytes per cycle of memory bandwidth
)

PRESETS: dict[str, FabricConfig] = {
    "default": _DEFAULT,
    "tiny": replace(
        _DEFAULT,
        name="tiny",
        tensor=replace(_DEFAULT.tensor, rows=4, cols=4),
        noc=replace(_DEFAULT.noc, width=2, height=2),
        cache=replace(_DEFAULT.cache, sets=64, ways=4, mshrs=4),
        tile=replace(_DEFAULT.tile, scratchpad_bytes=16 * 1024, accumulator_bytes=4 * 1024),
        mem_ports=1,
    ),
    # Sized for an ECP5-85F (ULX3S); revisited by the synthesis flow (docs/synthesis.md): one more
    # multiplier and adder stage lift a processing element from 55 to 74 MHz on the ECP5-85F.
    # One VC per message class: the 2 x 1 mesh has no congestion to spread, and a second VC made
    # the mesh 13.6k of the board fabric's 77k LUT4 (92 % of the part). 4 x 2 tensor cores: with
    # 4 x 4 the board fabric was still 86 % of the LUT4s and nextpnr could not route it
    # (docs/synthesis.md); the processing elements are most of a tile.
    "ulx3s": replace(
        _DEFAULT,
        name="ulx3s",
        tensor=replace(_DEFAULT.tensor, rows=4, cols=2,
                       numeric=replace(_DEFAULT.tensor.numeric, fmul_latency=3, fadd_latency=4)),
        noc=replace(_DEFAULT.noc, width=2, height=1, flit_bits=64, vcs=1),
        cache=replace(_DEFAULT.cache, sets=32, ways=2, mshrs=2, data_bytes=8, addr_bits=24, id_bits=20),
        tile=replace(_DEFAULT.tile, scratchpad_bytes=8 * 1024, accumulator_bytes=1024, word_bytes=8,
                     cmd_queue_depth=32),
        mem_ports=1,
    ),
}


def fabric_from_dict(d: dict) -> FabricConfig:
    """Inverse of ``dataclasses.asdict`` for a :class:`FabricConfig` (testbench parameters)."""
    tensor = dict(d["tensor"])
    tensor["numeric"] = NumericConfig(**tensor["numeric"])
    return FabricConfig(
        name=d["name"], tensor=TensorConfig(**tensor), noc=NocConfig(**d["noc"]),
        cache=CacheConfig(**d["cache"]), tile=TileConfig(**d["tile"]), mem_ports=d["mem_ports"],
    )


def preset(name: str) -> FabricConfig:
    """Return the named preset, or raise ``ValueError`` listing the known names."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; allowed: {', '.join(PRESETS)}") from None
