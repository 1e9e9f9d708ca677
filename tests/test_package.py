"""The distribution as a user meets it: one import, a version, a licence and a citation."""

from importlib import metadata
from pathlib import Path

import derivations
import dynamics

ROOT = Path(__file__).resolve().parents[1]


def test_import_ncdyn_exposes_both_packages_and_a_version():
    import ncdyn

    assert ncdyn.__version__ == metadata.version("ncdyn")
    for name in derivations.__all__:
        assert getattr(ncdyn, name) is getattr(derivations, name), name
    for name in dynamics.__all__:
        assert getattr(ncdyn, name) is getattr(dynamics, name), name
    assert ncdyn.derive(ncdyn.ModelSpec("euclidean")).reduce().order == 3


def test_licence_and_citation_files():
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    citation = (ROOT / "CITATION.cff").read_text()
    for cited in ("Tian", "Bao", "Halvagal", "cff-version"):
        assert cited in citation


def test_latex_uses_the_models_symbol_names():
    from derivations import latex, symbols

    assert latex(symbols.sigma2 * symbols.alpha_p) in (r"\alpha_p \sigma^2", r"\sigma^2 \alpha_p")
