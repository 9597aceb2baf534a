"""The `stare-robot` dispatcher."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from stare_robot import cli


def test_unknown_command_suggests_the_closest_and_lists_all(capsys):
    assert cli.main(["stagse"]) == 2
    err = capsys.readouterr().err
    assert "Did you mean 'stages'?" in err
    for name in cli.COMMANDS:
        assert name in err


def test_help_lists_every_command(capsys):
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in cli.COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_module_has_a_main(name):
    module = importlib.import_module(cli.COMMANDS[name][0])
    assert callable(getattr(module, "main", None)), f"{cli.COMMANDS[name][0]} lacks main(argv)"


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "stare_robot.cli", "nope"], capture_output=True, text=True)
    assert out.returncode == 2 and "unknown command 'nope'" in out.stderr
