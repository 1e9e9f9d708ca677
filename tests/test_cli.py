"""The ``ncdyn`` command line."""

import subprocess
import sys

import pytest

from dynamics._cli import main


def test_derive_prints_the_system(capsys):
    assert main(["derive", "--loss", "cosine", "--target", "simsiam"]) == 0
    out = capsys.readouterr().out
    assert "dp/dt =" in out and "ds/dt =" in out
    assert "order on s = p**2/alpha_p: 6" in out
    assert "breaks the predictor norm law" in out


def test_derive_latex_and_reduced(capsys):
    assert main(["derive", "--loss", "euclidean", "--target", "ema", "--reduced", "--latex"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(r"\begin{aligned}") and r"\dot{\tau}" in out and r"\dot{s}" not in out


def test_derive_steps(capsys):
    assert main(["derive", "--loss", "cosine", "--moments", "leading", "--steps"]) == 0
    out = capsys.readouterr().out
    assert "[per_sample_gradient]" in out and "[ansatz_check]" in out


def test_bad_choice_is_rejected_with_the_allowed_values(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["derive", "--loss", "l1"])
    assert exc.value.code == 2
    assert "euclidean" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "dynamics._cli", "derive", "--loss", "euclidean"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "euclidean/simsiam" in out
