"""The `tessera` command line: help everywhere, Verilog export, errors naming the argument."""

import subprocess
import sys

import pytest

from tessera.cli.main import build_parser, main


def _subcommands(parser):
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            yield from action.choices.items()


def test_help_everywhere(capsys):
    parser = build_parser()
    todo = [("tessera", parser)]
    seen = 0
    while todo:
        name, p = todo.pop()
        text = p.format_help()
        assert "usage:" in text, name
        seen += 1
        todo += [(f"{name} {n}", sp) for n, sp in _subcommands(p)]
    assert seen >= 3


def test_console_script_help():
    """The installed `tessera` entry point (pyproject's [project.scripts]), beside this Python."""
    from pathlib import Path

    exe = Path(sys.executable).parent / "tessera"
    assert exe.exists(), f"{exe}: the console script is not installed (make env)"
    out = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "verilog" in out.stdout
    out = subprocess.run([str(exe), "verilog", "--preset", "nope"], capture_output=True, text=True)
    assert out.returncode == 2 and "--preset" in out.stderr


def test_verilog_export(tmp_path, capsys):
    from tessera.rtl.blocks import registry

    blocks = sorted(registry())
    assert blocks, "no blocks registered"
    assert main(["verilog", "--block", blocks[0], "--preset", "tiny", "-o", str(tmp_path)]) == 0
    out = tmp_path / f"{blocks[0]}_tiny.v"
    assert out.exists() and f"module {blocks[0]}_tiny" in out.read_text()


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["verilog", "--preset", "nope"], "--preset"),
        (["verilog", "--block", "nope", "--preset", "tiny"], "--block"),
    ],
)
def test_errors_name_the_argument(argv, needle, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert needle in capsys.readouterr().err
