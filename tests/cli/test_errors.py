"""pqlab.cli.errors: the command line's one error type and its exit code, as main uses them."""

from __future__ import annotations

import argparse

import pytest

from pqlab.cli import main as cli
from pqlab.cli.errors import USAGE_EXIT, UsageError


def test_the_usage_exit_code_is_argparse_s(capsys):
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--n", type=int)
    with pytest.raises(SystemExit) as caught:
        parser.parse_args(["--n", "x"])
    assert caught.value.code == USAGE_EXIT == 2
    assert "invalid int value" in capsys.readouterr().err


def test_the_parser_raises_it_with_the_program_s_name_instead_of_exiting():
    with pytest.raises(UsageError, match=r"^pqlab run: argument --tasks: "):
        cli.build_parser().parse_args(["run", "--tasks", "-3"])


def test_main_prints_one_a_handler_raised_as_one_line_and_exits_with_it(capsys, monkeypatch):
    def handler(args):
        raise UsageError("pqlab run: a reason")

    monkeypatch.setitem(cli.COMMANDS, "run", (*cli.COMMANDS["run"][:2], handler))
    assert cli.main(["run"]) == USAGE_EXIT
    out, err = capsys.readouterr()
    assert out == "" and err == "pqlab run: a reason\n"


def test_a_message_without_the_program_is_prefixed_with_it(capsys, monkeypatch):
    def handler(args):
        raise UsageError("no such thing")

    monkeypatch.setitem(cli.COMMANDS, "run", (*cli.COMMANDS["run"][:2], handler))
    assert cli.main(["run"]) == USAGE_EXIT
    assert capsys.readouterr().err == "pqlab: error: no such thing\n"


def test_other_exceptions_are_not_usage_errors(monkeypatch):
    def handler(args):
        raise RuntimeError("a bug")

    monkeypatch.setitem(cli.COMMANDS, "run", (*cli.COMMANDS["run"][:2], handler))
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(["run"])
