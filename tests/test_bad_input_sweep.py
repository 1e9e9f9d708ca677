"""Every public function, called with bad input, raises ValueError/TypeError naming the problem,
from the toolkit's own code (not from deep inside JAX, SymPy or NumPy)."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import derivations  # noqa: E402
import dynamics  # noqa: E402
from derivations import ModelSpec, derive, gaussian_expectation, wick_moment  # noqa: E402

EUC = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0}
COS = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 1.0, "N_psi": 1.0, "N_phi": 1.0, "T": 1.0}
NAN = float("nan")
PACKAGES = (Path(derivations.__file__).parent, Path(dynamics.__file__).parent)


def E():
    return derive(ModelSpec("euclidean"))


def C():
    return derive(ModelSpec("cosine"))


CASES = [
    # derivations
    ("ModelSpec loss", lambda: ModelSpec(loss="mse"), ValueError, "ModelSpec.loss"),
    ("ModelSpec type", lambda: ModelSpec(target=3), TypeError, "ModelSpec.target must be a str"),
    ("derive type", lambda: derive(42), TypeError, "spec must be"),
    ("derive field", lambda: derive(norms="fixed"), ValueError, "ModelSpec.norms"),
    ("gaussian_expectation", lambda: gaussian_expectation(1, [], {}), ValueError, "variables"),
    ("wick_moment", lambda: wick_moment([1, 2], np.eye(3)), ValueError, "exponents"),
    ("rhs params type", lambda: E().to_jax()(0.0, [0.1, 0.1], None), TypeError, "params must be a dict"),
    ("rhs params nan", lambda: E().to_numpy()(0.0, [0.1, 0.1], dict(EUC, eta=NAN)), ValueError, "eta"),
    ("rhs params string", lambda: E().to_numpy()(0.0, [0.1, 0.1], dict(EUC, eta="x")), TypeError, "eta"),
    ("rhs y shape", lambda: E().to_jax()(0.0, np.zeros((3, 5)), EUC), ValueError, r"y must have shape \(\.\.\., 2\)"),
    ("rhs y inf", lambda: E().to_jax()(0.0, [np.inf, 0.0], EUC), ValueError, "y must be finite"),
    ("modes K", lambda: E().modes(-1), ValueError, "K must be"),
    ("modes unpack", lambda: E().modes(3).unpack(np.zeros(5)), ValueError, "shape"),
    ("check_params unknown", lambda: E().check_params(dict(EUC, zeta=1)), ValueError, "unknown"),
    # integration and the network
    ("integrate y0 strings", lambda: dynamics.integrate(E(), ["a", "b"], (0, 1), EUC), TypeError, "y0 must be numeric"),
    ("integrate y0 nan", lambda: dynamics.integrate(E(), [NAN, 0.1], (0, 1), EUC), ValueError, "y0 must be finite"),
    ("integrate span nan", lambda: dynamics.integrate(E(), [0.1, 0.1], (0, NAN), EUC), ValueError, "t_span"),
    ("integrate params nan", lambda: dynamics.integrate(E(), [0.1, 0.1], (0, 1), dict(EUC, eta=NAN)), ValueError, "eta"),
    ("integrate n_save", lambda: dynamics.integrate(E(), [0.1, 0.1], (0, 1), EUC, n_save=1), ValueError, "n_save"),
    ("integrate rtol type", lambda: dynamics.integrate(E(), [0.1, 0.1], (0, 1), EUC, rtol="tight"), TypeError, "rtol"),
    ("network spec", lambda: dynamics.simulate_network("cosine", EUC), TypeError, "spec must be"),
    ("network params nan", lambda: dynamics.simulate_network(ModelSpec(), dict(EUC, eta=NAN), h=4, t1=1.0), ValueError, "eta"),
    ("network batch", lambda: dynamics.simulate_network(ModelSpec(), EUC, h=4, batch=0), ValueError, "batch"),
    ("compare widths", lambda: dynamics.compare(ModelSpec("euclidean"), EUC, widths=(0,)), ValueError, "widths"),
    ("compare model", lambda: dynamics.compare("euclidean", EUC), TypeError, "model must be a ModelSpec"),
    # equilibria and parameters
    ("equilibria sigma2", lambda: dynamics.equilibria(E(), dict(EUC, sigma2=-1.0)), ValueError, "sigma2"),
    ("equilibria N_phi", lambda: dynamics.equilibria(C(), dict(COS, N_phi=-2.0)), ValueError, "N_phi"),
    ("equilibria params array", lambda: dynamics.equilibria(E(), dict(EUC, eta=np.ones(3))), TypeError, "eta"),
    ("equilibria domain type", lambda: dynamics.equilibria(E(), EUC, domain=[0, 1]), TypeError, "domain"),
    ("equilibria domain nan", lambda: dynamics.equilibria(E(), EUC, domain={"p": (NAN, 1)}), ValueError, "domain"),
    ("equilibria n_starts", lambda: dynamics.equilibria(E().modes(2), EUC, n_starts=0), ValueError, "n_starts"),
    ("roots_batch nan", lambda: dynamics.roots_batch(E(), dict(EUC, eta=np.array([0.1, NAN]))), ValueError, "eta"),
    ("roots_batch type", lambda: dynamics.roots_batch(E(), None), TypeError, "params"),
    ("threshold system", lambda: dynamics.threshold("cubic", "eta"), TypeError, "system must be"),
    ("bifurcation values", lambda: dynamics.bifurcation(E(), ("eta", [0.3, 0.1]), {"sigma2": 0.2, "alpha_p": 1.0}), ValueError, "values"),
    ("bifurcation param", lambda: dynamics.bifurcation(E(), ("gamma", [0.1, 0.2]), EUC), ValueError, "param"),
    ("regimes same axes", lambda: dynamics.regimes(C(), ("eta", [0.1]), ("eta", [0.2]), COS), ValueError, "different"),
    ("regimes scale", lambda: dynamics.regimes(C(), (dynamics.SCALE, [-1.0, 1.0]), ("eta", [0.1]), COS), ValueError, "scale"),
    ("shrinking t", lambda: dynamics.shrinking_norms(C(), [1.0, 0.5], COS), ValueError, "t_eval must be"),
    ("basins fixed", lambda: dynamics.basins(derive(ModelSpec("euclidean", "ema")), {"p": [0, 1], "s": [0, 1]},
                                             dict(EUC, beta=0.5)), ValueError, "fixed"),
    # figures and the main job
    ("portrait system", lambda: dynamics.portrait("cubic", EUC), TypeError, "system must be"),
    ("portrait manifold", lambda: dynamics.portrait(derive(ModelSpec("euclidean", "ema")), dict(EUC, beta=0.5),
                                                    fixed={"tau": "manifold"}), ValueError, "only s"),
    ("flow_1d range", lambda: dynamics.plot_flow_1d(E(), EUC, xlim=(1.0, 0.0)), ValueError, "xlim"),
    ("plot_basins type", lambda: dynamics.plot_basins(None), TypeError, "Basins"),
    ("plot_spectra state", lambda: dynamics.plot_spectra(None, state="tau"), ValueError, "state"),
]


@pytest.mark.parametrize("name, call, exc, match", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_reported_clearly(name, call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call()
    origin = Path(str(info.traceback[-1].path)).resolve()
    assert any(p in origin.parents for p in PACKAGES), f"{name}: raised deep inside {origin}"


def test_reproduce_into_a_file_is_refused(tmp_path):
    target = tmp_path / "report"
    target.write_text("not a directory")
    with pytest.raises(ValueError, match="out must be a directory"):
        dynamics.reproduce(target, quick=True, progress=False)
