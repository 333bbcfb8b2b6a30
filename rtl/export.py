"""Verilog and RTLIL of a component, with Tessera's port names.

Amaranth names the port of signature member path ``("m_axi", "awaddr")`` ``m_axi__awaddr``. The
ports of :class:`~tessera.rtl.bus.axi.AXI4Signature` and
:class:`~tessera.rtl.bus.axi.AXI4LiteSignature` members are named as cocotbext-axi and FPGA
tools expect them instead, ``m_axi_awaddr`` (``m_axi0_awaddr`` for element 0 of an array of
ports); every other port keeps Amaranth's name. Every exporter in Tessera goes through
:func:`to_verilog` / :func:`to_rtlil`, and :func:`tessera.rtl.instance.instance_of` uses
:func:`port_name`, so a module written once and instantiated elsewhere has the same ports.
"""

from __future__ import annotations

import re

from amaranth.back import rtlil, verilog
from amaranth.hdl import Value
from amaranth.lib import wiring

from tessera.rtl.bus.axi import AXI4LiteSignature, AXI4Signature

__all__ = ["port_name", "verilog_ports", "to_verilog", "to_rtlil"]

_AXI = (AXI4Signature, AXI4LiteSignature)


def port_name(signature: wiring.Signature, path) -> str:
    """The exported name of the member at ``path`` (as ``Signature.flatten`` gives it)."""
    name, sig = "", signature
    for i, step in enumerate(path):
        if isinstance(step, int):                     # an element of an array of ports
            name += str(step) if isinstance(sig, _AXI) else f"__{step}"
            continue
        name += ("_" if isinstance(sig, _AXI) else "__") if i else ""
        name += step
        member = sig.members[step] if isinstance(sig, wiring.Signature) else None
        sig = member.signature if member is not None and member.is_signature else None
    return name


def verilog_ports(component: wiring.Component) -> dict:
    """``{port name: (signal, None)}`` for ``convert(..., ports=)``; the direction is left to
    Amaranth (driven inside: output) and checked against the signature by :func:`_check_directions`."""
    ports = {}
    for path, _, value in component.signature.flatten(component):
        ports[port_name(component.signature, path)] = (Value.cast(value), None)
    return ports


def _directions(component) -> dict[str, str]:
    return {port_name(component.signature, path): "output" if member.flow == wiring.Out else "input"
            for path, member, _ in component.signature.flatten(component)}


def _check_directions(component, found: dict[str, str], name: str) -> None:
    want = _directions(component)
    bad = sorted(p for p, d in want.items() if found.get(p) != d)
    if bad:
        raise ValueError(f"{name}: ports {', '.join(bad)} would be exported with the wrong direction "
                         "(an output nothing drives: drive it) or not found")


def to_verilog(component: wiring.Component, name: str, **kwargs) -> str:
    """``amaranth.back.verilog.convert`` of ``component`` as module ``name`` with :func:`port_name`s."""
    text = verilog.convert(component, name=name, ports=verilog_ports(component), **kwargs)
    header = text[text.index(f"module {name}("):]
    decls = re.finditer(r"^\s*(input|output)\s+(?:signed\s+)?(?:\[[^]]*\]\s*)?(\S+?);", header, re.M)
    found = {m[2]: m[1] for m in decls}
    _check_directions(component, found, name)
    return text


def to_rtlil(component: wiring.Component, name: str, **kwargs) -> str:
    """``amaranth.back.rtlil.convert`` of ``component`` as module ``name`` with :func:`port_name`s."""
    text = rtlil.convert(component, name=name, ports=verilog_ports(component), **kwargs)
    top = text[text.index(f"module \\{name}\n"):]
    top = top[:top.index("\nend\n")]
    wires = re.finditer(r"^\s*wire (?:width \d+ )?(input|output) \d+\s+(?:signed\s+)?\\(\S+)$", top, re.M)
    found = {m[2]: m[1] for m in wires}
    _check_directions(component, found, name)
    return text
