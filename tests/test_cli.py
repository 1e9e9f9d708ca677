"""The ``ncdyn`` command line."""

import subprocess
import sys

import pytest

from dynamics.ssl._cli import main


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
        [sys.executable, "-m", "dynamics.ssl._cli", "derive", "--loss", "euclidean"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert "euclidean/simsiam" in out


def test_every_option_has_help_text():
    from dynamics.ssl._cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subs.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"ncdyn {name} {action.option_strings} has no help text"


def test_norms_with_a_polynomial_loss_is_an_error_not_ignored(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["derive", "--loss", "euclidean", "--norms", "self-consistent"])
    assert exc.value.code == 2 and "--norms" in capsys.readouterr().err


def test_steps_with_latex_print_latex(capsys):
    assert main(["derive", "--loss", "euclidean", "--steps", "--latex"]) == 0
    out = capsys.readouterr().out
    steps = out[out.index("[expected_gradient]"):]
    assert r"\sigma^2" in steps and r"\sigma_{2}" not in steps
    assert "alpha_p*" not in steps


def test_new_model_options_and_conflicts(capsys):
    assert main(["derive", "--loss", "isoloss", "--predictor", "directpred"]) == 0
    assert "ds/dt" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["derive", "--loss", "euclidean", "--target", "ema", "--no-stop-gradient"])
    assert exc.value.code == 2 and "stop_gradient" in capsys.readouterr().err
