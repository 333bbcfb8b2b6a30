"""Instantiate a component as a Verilog module written once (hierarchical export).

Amaranth's Verilog backend writes a copy of every sub-component. For a design built from many
identical blocks (the PEs of a tensor core, the tiles and L2 slices of a fabric) that makes the
text, and Verilator's C++, many times larger than it needs to be. :func:`instance_of` puts an
``Instance`` of a named module in place of the component, with the ports that component's own
top-level Verilog has (:func:`tessera.rtl.export.port_name`: ``tx__valid``, ``m_axi_awaddr``,
...), and returns an interface object with the component's signature, so that the parent wires it
exactly as it would wire the component. The exporter appends the module's definition (see
:mod:`tessera.rtl.tensor.export`).
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, ResetSignal, Value
from amaranth.lib import wiring

from tessera.rtl.export import port_name

__all__ = ["instance_of"]


def instance_of(m, component: wiring.Component, module: str, name: str):
    """Add an ``Instance(module)`` with ``component``'s ports to ``m`` as ``name``; return its
    interface (``component.signature.create()``).

    Only the component's signature is used; the file that creates it starts with Amaranth's linter
    option ``# amaranth: UnusedElaboratable=no`` so that the unelaborated component is not reported."""
    iface = component.signature.create(path=(name,))
    ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
    for path, member, value in component.signature.flatten(iface):
        pname = port_name(component.signature, path)
        ports[("i_" if member.flow == wiring.In else "o_") + pname] = Value.cast(value)
    m.submodules[name] = Instance(module, **ports)
    return iface
