"""The command line's messages (issue 17, "The user's side"): every bad input of every command is
refused in one line that names its flag, before anything is exported, built or simulated; outputs
are checked before the work; options that do not apply are refused; ``--version``; help with the
defaults; Ctrl-C and file errors without a traceback. Nothing here builds or simulates."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from tessera.cli import board_gemm, board_link
from tessera.cli.main import HelpFormatter, build_parser, main


@pytest.fixture
def nothing_built(monkeypatch):
    """Every way a command could export, build or simulate raises instead: a refusal must come
    first."""
    import tessera.cli.bench_tensor
    import tessera.rtl.blocks
    import tessera.synth.table
    import tessera.tb.noc.flat_mesh
    import tessera.tools.fabric_run
    import tessera.tools.harness

    def built(*args, **kwargs):
        raise AssertionError("built or simulated before the arguments were checked")

    for module, name in ((tessera.tools.harness, "run"), (tessera.tools.harness, "build"),
                         (tessera.tools.fabric_run, "native_library"), (tessera.tools.fabric_run, "run_jobs"),
                         (tessera.rtl.blocks, "export_verilog"), (tessera.synth.table, "prepare"),
                         (tessera.tb.noc.flat_mesh, "mesh_verilog"),
                         (tessera.cli.bench_tensor, "core_verilog")):
        monkeypatch.setattr(module, name, built)
    monkeypatch.delenv("WAVES", raising=False)
    monkeypatch.delenv("SEED", raising=False)


def refused(entry, argv, capsys) -> str:
    """Run ``entry(argv)``; it must exit with 2, printing one line (and, with the ``nothing_built``
    fixture, before anything is exported, built or simulated). Returns the line."""
    with pytest.raises(SystemExit) as e:
        entry(argv)
    err = capsys.readouterr().err
    assert e.value.code == 2, (argv, err)
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


@pytest.fixture
def files(tmp_path):
    """A plain file, a directory and a small trace in ``tmp_path``."""
    (tmp_path / "file").write_text("x\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "trace.txt").write_text("R 100 16\n")
    return tmp_path


GEMM = ["--m", "4", "--n", "4", "--k", "4"]


def cases(t):
    """(command line, flag its error must name), for every command; ``t`` is the temporary folder
    of :func:`files`."""
    f, d = str(t / "file"), str(t / "dir")
    out = str(t / "o.json")
    cache = ["bench", "cache", "--pattern", "stream"]
    noc = ["bench", "noc"]
    return [
        # outputs: a directory, a path under a file
        ([*cache, "--json", d], "--json"),
        ([*cache, "--json", f"{f}/o.json"], "--json"),
        ([*noc, "--rate", "0.5", "--json", d], "--json"),
        ([*noc, "--sweep", "--json", out, "--plot", f"{f}/p.png"], "--plot"),
        ([*noc, "--sweep", "--json", out, "--plot", str(t / "p.jpg")], "--plot"),
        (["bench", "tensor", *GEMM, "--out", d], "--out"),
        (["bench", "tensor", *GEMM, "--out", str(t / "d.txt")], "--out"),
        (["bench", "tensor", *GEMM, "--json", f"{f}/o.json"], "--json"),
        (["bench", "sim", "--json", d], "--json"),
        (["bench", "sim", "--json", f"{f}/sub/o.json"], "--json"),
        (["asm", f, "-o", d], "--output"),
        (["asm", f, "-o", f"{f}/w.hex"], "--output"),
        (["verilog", "--preset", "tiny", "-o", f], "--output"),
        (["verilog", "--preset", "tiny", "-o", f"{f}/v"], "--output"),
        (["synth", "--design", "synth_probe", "-o", f], "--output"),
        # numbers out of range
        ([*cache, "--seed", "-3", "--json", out], "--seed"),
        ([*cache, "--mem-latency", "0", "--json", out], "--mem-latency"),
        ([*cache, "--accesses", "0", "--json", out], "--accesses"),
        ([*cache, "--queue-depth", "1", "--json", out], "--queue-depth"),
        ([*cache, "--mshrs", "0", "--json", out], "--mshrs"),
        ([*noc, "--rate", "0.5", "--seed", "-3", "--json", out], "--seed"),
        ([*noc, "--rate", "1.5", "--json", out], "--rate"),
        ([*noc, "--rate", "nan", "--json", out], "--rate"),
        ([*noc, "--rate", "0", "--json", out], "--rate"),
        ([*noc, "--sweep", "--rates", "0.5,2,1.0", "--json", out], "--rates"),
        ([*noc, "--rate", "0.5", "--cycles", "10", "--json", out], "--cycles"),
        ([*noc, "--rate", "0.5", "--packet-flits", "0", "--json", out], "--packet-flits"),
        ([*noc, "--rate", "0.5", "--depth", "1", "--json", out], "--depth"),
        (["bench", "tensor", *GEMM, "--special-prob", "5"], "--special-prob"),
        (["bench", "tensor", *GEMM, "--special-prob", "-0.1"], "--special-prob"),
        (["bench", "tensor", *GEMM, "--seed", "-3"], "--seed"),
        (["bench", "tensor", "--m", "0", "--n", "4", "--k", "4"], "--m"),
        (["bench", "tensor", *GEMM, "--cols", "0"], "--cols"),
        (["bench", "sim", "--seed", "-3"], "--seed"),
        (["bench", "sim", "--k", "0"], "--k"),
        (["bench", "sim", "--toggle", "0"], "--toggle"),
        (["bench", "sim", "--threads", "65"], "--threads"),
        (["synth", "--design", "synth_probe", "--seed", "-1"], "--seed"),
        (["synth", "--design", "synth_probe", "--freq", "0"], "--freq"),
        (["synth", "--design", "synth_probe", "--timeout", "0"], "--timeout"),
        (["synth", "--design", "synth_probe", "--timeout", "inf"], "--timeout"),
        # options that do not apply to the chosen mode
        (["bench", "cache", "--trace", str(t / "trace.txt"), "--accesses", "10", "--json", out],
         "--accesses"),
        ([*noc, "--pattern", "multicast", "--rate", "0.5", "--json", out], "--rate"),
        ([*noc, "--pattern", "multicast", "--sweep", "--json", out], "--sweep"),
        ([*noc, "--pattern", "multicast", "--cycles", "200", "--json", out], "--cycles"),
        ([*noc, "--pattern", "multicast", "--plot", str(t / "p.png"), "--json", out], "--plot"),
        ([*noc, "--rate", "0.5", "--rates", "0.1,1.0", "--json", out], "--rates"),
        ([*noc, "--rate", "0.5", "--plot", str(t / "p.png"), "--json", out], "--plot"),
        (["bench", "tensor", *GEMM, "--dtype", "int8", "--special-prob", "0.1"], "--special-prob"),
        (["verilog", "--list", "--block", "fp32_add"], "--block"),
        (["verilog", "--list", "-o", d], "--output"),
        (["synth", "--table", "--seed", "3"], "--seed"),
        (["synth", "--table", "--freq", "50"], "--freq"),
        (["synth", "--design", "synth_probe", "--force"], "--force"),
        # inputs
        (["asm", d], "source"),
        (["disasm", str(t / "missing.hex")], "program"),
        (["disasm", f], "program"),
    ]


def test_bad_inputs_name_the_flag(files, nothing_built, capsys):
    for argv, flag in cases(files):
        err = refused(main, argv, capsys)
        assert flag in err, (argv, err)
        assert err.startswith("tessera " + " ".join(argv[:2] if argv[0] == "bench" else argv[:1])), err


def test_board_scripts_name_the_flag(files, nothing_built, capsys):
    f, d = str(files / "file"), str(files / "dir")
    tty = ["--tty", str(files / "no-tty")]
    for argv, flag in (
        ([*tty, "--baud", "0", "id"], "--baud"),
        ([*tty, "--memory-bytes", "0", "id"], "--memory-bytes"),
        ([*tty, "--preset", "huge", "id"], "--preset"),
        ([*tty, "gemm", *GEMM, "--special-prob", "2"], "--special-prob"),
        ([*tty, "gemm", *GEMM, "--seed", "-1"], "--seed"),
        ([*tty, "gemm", *GEMM, "--out", d], "--out"),
        ([*tty, "gemm", "--a", f, "--b", f, "--seed", "5"], "--seed"),
        ([*tty, "--memory-bytes", "64", "gemm", *GEMM], "--memory-bytes"),
        (["--tty", "/dev/null", "id"], "--tty"),                    # not a serial port
    ):
        err = refused(board_gemm.main, argv, capsys)
        assert flag in err and err.startswith(board_gemm.PROG), (argv, err)
    link = [*tty, "--design", "synth_probe"]
    for argv, flag in (
        ([*link, "--baud", "0", "id"], "--baud"),
        ([*link, "step", "0"], "step"),
        ([*link, "step", "x"], "step"),
        ([*link, "poke", "a"], "poke"),
        ([*link, "poke", "a", "zz"], "poke"),
        ([*link, "id", "extra"], "id"),
        ([*tty, "--design", "no_such_block", "ports"], "--design"),
        ([*link, "--preset", "huge", "ports"], "--preset"),
    ):
        err = refused(board_link.main, argv, capsys)
        assert flag in err and err.startswith(board_link.PROG), (argv, err)
    # A serial device that does not exist: one line naming it.
    err = refused(board_link.main, [*link, "id"], capsys)
    assert str(files / "no-tty") in err


READ_ONLY_CASES = (
    (["bench", "cache", "--pattern", "stream", "--json", "{ro}/o.json"], "--json"),
    (["bench", "noc", "--rate", "0.5", "--json", "{ro}/sub/o.json"], "--json"),
    (["bench", "tensor", *GEMM, "--out", "{ro}/d.npy"], "--out"),
    (["bench", "sim", "--json", "{ro}/o.json"], "--json"),
    (["asm", "{src}", "-o", "{ro}/w.hex"], "--output"),
    (["verilog", "--preset", "tiny", "--block", "fp32_add", "-o", "{ro}"], "--output"),
    (["synth", "--design", "synth_probe", "-o", "{ro}"], "--output"),
)


def _read_only(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    src = tmp_path / "p.s"
    src.write_text("")
    ro.chmod(0o555)
    try:
        for argv, flag in READ_ONLY_CASES:
            argv = [a.format(ro=ro, src=src) for a in argv]
            err = refused(main, argv, capsys)
            assert flag in err and "permission denied" in err, (argv, err)
    finally:
        ro.chmod(0o755)


def test_read_only_folder_refused(tmp_path, nothing_built, monkeypatch, capsys):
    """A read-only output folder is refused before any work. The permission check is told that
    the folder is read-only as well as the folder made so: as root (CI) the chmod alone would not
    stop a write."""
    import tessera.cli.common

    real = os.access

    def access(path, mode, **kwargs):
        if mode & os.W_OK and (tmp_path / "ro") in (Path(path), *Path(path).parents):
            return False
        return real(path, mode, **kwargs)

    monkeypatch.setattr(tessera.cli.common.os, "access", access)
    _read_only(tmp_path, capsys)


def test_version(capsys):
    from tessera.tools.provenance import version

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out == version() + "\n" and out.startswith("tessera ") and "(commit " in out


def _parsers():
    """(name, parser) of ``tessera`` and every subcommand below it, and of the board scripts."""
    todo = [("tessera", build_parser()), ("board_gemm", board_gemm.build_parser()),
            ("board_link", board_link.build_parser())]
    while todo:
        name, p = todo.pop()
        yield name, p
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{name} {n}", sp) for n, sp in action.choices.items()]


def test_every_help_works_and_shows_defaults(capsys):
    names = []
    for name, p in _parsers():
        names.append(name)
        argv = name.split()[1:] + ["--help"]
        entry = {"tessera": main, "board_gemm": board_gemm.main,
                 "board_link": board_link.main}[name.split()[0]]
        if name.startswith("board_") and argv != ["--help"]:
            argv = ["--tty", "x"] + argv                 # the board scripts' required option first
        with pytest.raises(SystemExit) as e:
            entry(argv)
        assert e.value.code == 0, name
        text = capsys.readouterr().out
        assert "usage:" in text, name
        assert "(default: None)" not in text and "(default: False)" not in text, name
        assert issubclass(p.formatter_class, HelpFormatter), name
        fmt = p._get_formatter()
        for action in p._actions:
            said = fmt._expand_help(action) if action.help else ""
            assert said.lower().count("(default") <= 1, (name, action.dest, said)
    assert {"tessera bench cache", "tessera bench noc", "tessera bench tensor", "tessera bench sim",
            "tessera asm", "tessera disasm", "tessera verilog", "tessera synth", "tessera gemm",
            "tessera sim", "board_gemm gemm"} <= set(names)
    shown = {n: " ".join(p.format_help().split()) for n, p in _parsers()}
    assert "(default: 128)" in shown["tessera bench cache"]            # --sets
    assert "(default: default)" in shown["tessera bench tensor"]       # --preset
    assert "(default: 4x4)" in shown["tessera bench noc"]
    assert "(default: 1)" in shown["tessera synth"]                    # --seed


def test_ctrl_c_is_one_line(monkeypatch, capsys):
    import tessera.cli.cmd_verilog

    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(tessera.cli.cmd_verilog, "run", interrupted)
    assert main(["verilog", "--list"]) == 130
    assert capsys.readouterr().err == "tessera verilog: interrupted\n"
    import tessera.cli.bench_sim

    monkeypatch.setattr(tessera.cli.bench_sim, "run", interrupted)
    assert main(["bench", "sim"]) == 130
    assert capsys.readouterr().err == "tessera bench sim: interrupted\n"
    monkeypatch.setattr(board_link, "run", interrupted)
    assert board_link.main(["--tty", "x", "--design", "d", "id"]) == 130
    assert capsys.readouterr().err == f"{board_link.PROG}: interrupted\n"


def test_file_errors(tmp_path, monkeypatch, capsys):
    """A file error on a path the user gave is one line naming it; one on any other path is an
    internal error and keeps its traceback, as does any other exception."""
    import tessera.cli.cmd_asm

    missing = tmp_path / "missing.s"
    monkeypatch.setattr(tessera.cli.cmd_asm, "run_asm", lambda args: open(args.source))
    err = refused(main, ["asm", str(missing)], capsys)
    assert err.startswith("tessera asm: error: ") and str(missing) in err

    def internal(args):
        open(tmp_path / "internal" / "x")

    monkeypatch.setattr(tessera.cli.cmd_asm, "run_asm", internal)
    with pytest.raises(FileNotFoundError):
        main(["asm", str(missing)])

    def bug(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(tessera.cli.cmd_asm, "run_asm", bug)
    with pytest.raises(RuntimeError):
        main(["asm", str(missing)])
