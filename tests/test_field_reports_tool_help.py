"""Every tool's --help shows the usage examples of its docstring line for line, as a user
would type them: the backslash continuations of a non-raw docstring used to be eaten, so that
`train_net --help` printed each example as one long line with runs of spaces."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parents[1] / "python" / "rcnn" / "tools"
NAMES = sorted(p.stem for p in TOOLS.glob("*.py") if p.stem not in ("__init__", "common"))


def docstring_source_lines(name: str) -> list[str]:
    """The module docstring's lines as written in the source file (not as Python reads
    them)."""
    source = (TOOLS / f"{name}.py").read_text()
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant), name
    lines = source.splitlines()[node.lineno - 1:node.end_lineno]
    lines[0] = lines[0].split('"""', 1)[1]
    lines[-1] = lines[-1].rsplit('"""', 1)[0]
    return lines


def example_lines(name: str) -> list[str]:
    """The indented lines of the docstring: the commands and their continuations."""
    return [line.rstrip() for line in docstring_source_lines(name) if line.startswith("    ")]


def test_every_tool_has_examples():
    assert set(NAMES) >= {"train_net", "test_net", "demo", "swap_roi", "run_demo"}
    for name in NAMES:
        assert example_lines(name), name


@pytest.mark.parametrize("name", NAMES)
def test_help_keeps_each_example_line(name, capsys):
    tool = importlib.import_module(f"rcnn.tools.{name}")
    with pytest.raises(SystemExit) as e:
        tool.main(["--help"])
    assert e.value.code == 0
    shown = capsys.readouterr().out.splitlines()
    for line in example_lines(name):
        assert line in shown, f"{name} --help lost the line {line!r}"
    continued = [line for line in example_lines(name) if line.endswith("\\")]
    if name in ("train_net", "test_net", "demo"):
        assert continued, name     # the examples that used to be joined
    assert not any("\\" in line and not line.endswith("\\") for line in shown
                   if line.startswith("    python")), shown
