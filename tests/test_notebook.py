"""The tutorial notebook (docs/tutorial.ipynb) executes without errors, and the numbers it
prints agree with independent references: the closed-form fold eta* = 1/(4c), the closed-form
roots of p^2 - c p^3 - eta p and the hand-written Jacobian of Tian et al.'s system, which
trajectories collapse, the degree of the cosine sextic, and the scale invariance of the cosine
network. The stored notebook carries no outputs."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "docs" / "tutorial.ipynb"
CELL_TIMEOUT = 300  # seconds per cell; the whole notebook takes well under a minute


def _stored():
    return json.loads(NOTEBOOK.read_text())


def test_stored_notebook_is_clean():
    nb = _stored()
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "the tutorial has code cells"
    for cell in code:
        assert cell["outputs"] == [] and cell["execution_count"] is None, cell.get("id")


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tmp_path_factory.mktemp("tutorial")
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    return nb


def _text(nb, cell_id):
    """Everything a cell printed or displayed as text."""
    (cell,) = [c for c in nb.cells if c.get("id") == cell_id]
    out = []
    for o in cell.outputs:
        assert o.output_type != "error", f"cell {cell_id}: {o.get('ename')}: {o.get('evalue')}"
        if o.output_type == "stream":
            out.append(o.text)
        elif "text/plain" in o.get("data", {}):
            out.append(o.data["text/plain"])
    return "".join(out)


def _images(nb, cell_id):
    (cell,) = [c for c in nb.cells if c.get("id") == cell_id]
    return sum("image/png" in o.get("data", {}) for o in cell.outputs)


SIGMA2, ALPHA_P = 0.2, 1.0
C = 1 + SIGMA2


def test_no_cell_errors_and_figures_shown(executed):
    for cell in executed.cells:
        if cell.cell_type == "code":
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.get("id")
            assert not [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"
                        and "Traceback" in o.text], cell.get("id")
    for cell_id in ("integrate-plot", "portrait", "flow1d", "network"):
        assert _images(executed, cell_id) == 1, cell_id
    (latex,) = [o for o in [c for c in executed.cells if c.get("id") == "latex"][0].outputs]
    assert r"\dot{p}" in latex.data["text/latex"]


def test_threshold_closed_form(executed):
    text = _text(executed, "threshold")
    eta_star = float(re.search(r"eta\* at sigma2 = 0\.2: ([0-9.]+)", text).group(1))
    assert abs(eta_star - 1 / (4 * C)) < 1e-11  # Tian et al.: eta* = 1/(4c)


def test_equilibria_closed_form_and_kinds(executed):
    text = _text(executed, "equilibria-print")
    rows = re.findall(r"p = (-?[0-9.]+), s = (-?[0-9.]+): ([a-z -]+),", text)
    assert len(rows) == 3
    eta = 0.1
    disc = math.sqrt(1 - 4 * C * eta)
    expect = [0.0, (1 - disc) / (2 * C), (1 + disc) / (2 * C)]  # roots of p^2 - c p^3 - eta p
    for (p, s, kind), p_ref in zip(rows, expect):
        p, s = float(p), float(s)
        assert abs(p - p_ref) < 1e-11 and abs(s - p_ref**2 / ALPHA_P) < 1e-11
        # Tian et al.: dp/dt = alpha_p s (1 - c p) - eta p, ds/dt = 2 p s (1 - c p) - 2 eta s
        jac = np.array([[-ALPHA_P * C * s - eta, ALPHA_P * (1 - C * p)],
                        [2 * s * (1 - 2 * C * p), 2 * p * (1 - C * p) - 2 * eta]])
        ev = np.linalg.eigvals(jac)
        assert np.all(np.abs(ev.imag) < 1e-12)
        ref = "saddle" if np.prod(ev.real) < 0 else "stable node" if np.all(ev.real < 0) else "?"
        assert kind.strip() == ref


def test_integration_collapses_above_the_threshold(executed):
    text = _text(executed, "integrate")
    rows = re.findall(r"eta = ([0-9.]+): (\w+)\s+p\(end\) = (-?[0-9.]+)", text)
    assert len(rows) == 9
    for eta, status, p_end in rows:
        eta, p_end = float(eta), float(p_end)
        if eta > 1 / (4 * C):
            assert status == "collapsed" and abs(p_end) < 1e-6
        else:
            # from p = 0.5 above the unstable root p- the mode settles at p+ = (1 + sqrt(1 - 4 c eta))/(2c)
            p_minus = (1 - math.sqrt(1 - 4 * C * eta)) / (2 * C)
            assert 0.5 > p_minus
            assert status == "finished" and abs(p_end - (1 + math.sqrt(1 - 4 * C * eta)) / (2 * C)) < 1e-6


def test_cosine_sextic_and_network_scale_invariance(executed):
    assert re.search(r"order of the reduced system in p: 3\b", _text(executed, "laws"))
    assert re.search(r"order of the reduced cosine system in p: 6\b", _text(executed, "cosine"))  # Bao (2023)
    ratio = float(re.search(r"\|Psi\|\^2\(0\) = ([0-9.]+)", _text(executed, "network")).group(1))
    assert abs(ratio - 1) < 0.02  # |Psi|^2 e^{2 eta t} is conserved by a scale-invariant loss
    assert "exact (finite width)" in _text(executed, "compare")
