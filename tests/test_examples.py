"""The fast example scripts run and print their claim."""

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name, expect", [
    ("derive_and_check.py", "order 6"),
    ("euclidean_threshold.py", "0.2083"),
    ("weight_decay_emergence.py", "emerges at t* = 4.86"),
])
def test_example_runs(name, expect, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", [name])
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    assert expect in capsys.readouterr().out
