"""`xvision ui`: its help, and the errors it gives before starting anything."""

from __future__ import annotations

import socket

import pytest

from xvision.cli import build_parser, main


def test_help_names_the_pages_and_options(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["ui", "--help"])
    text = capsys.readouterr().out
    for word in ("--store", "--model", "--port", "Map", "Ask", "Add data"):
        assert word in text


def test_missing_store_is_an_error_naming_it(tmp_path, capsys):
    assert main(["ui", "--store", str(tmp_path / "nowhere")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_busy_port_is_an_error_not_a_second_server(flanders_store, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--store", str(flanders_store), "--port", str(port)]) == 2
    assert f"port {port} is already in use" in capsys.readouterr().err
