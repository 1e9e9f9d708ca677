"""Displays: short plain reprs for big batches, HTML tables for Jupyter checked by parsing them
(row counts and values against closed forms), and tuples of names whose help() explains them."""

import html.parser
import pickle
import pydoc

import numpy as np
import pytest
import sympy as sp

import dynamics
from derivations import ODESystem
from dynamics import (
    BIFURCATION_KINDS,
    ITERATION_STATUSES,
    REGIMES,
    STATUSES,
    Classification,
    Comparison,
    Iteration,
    Solution,
    bifurcation,
    equilibria,
    integrate,
    regimes,
    roots_batch,
    threshold,
)

BIG = 10_000


class _Tables(html.parser.HTMLParser):
    """Rows of every table: header cells and data cells as text."""

    def __init__(self):
        super().__init__()
        self.header, self.rows, self._row, self._cell, self.text = [], [], None, None, []

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._row.append(("th" if tag == "th" else "td", "".join(self._cell).strip()))
            self._cell = None
        elif tag == "tr":
            if all(kind == "th" for kind, _ in self._row):
                self.header = [t for _, t in self._row]
            else:
                self.rows.append([t for _, t in self._row])
            self._row = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def tables(obj):
    text = obj._repr_html_()
    parser = _Tables()
    parser.feed(text)
    parser.close()
    assert text.count("<tr>") == len(parser.rows) + 1  # every row parsed, one header row
    return parser


def pitchfork():
    return ODESystem.from_equations({"x": "r*x - x^3"}, params=("r",), name="pitchfork")


def tian():
    """dx/dt = x^2 - c x^3 - eta x (the Euclidean SimSiam mode on its manifold): fold at
    eta = 1/(4c); for 0 < eta < 1/(4c) three equilibria, 0 and the larger root stable."""
    return ODESystem.from_equations({"x": "x^2 - c*x^3 - eta*x"}, params=("c", "eta"), collapse=("x",),
                                    param_domain={"c": (0, None), "eta": (0, None)})


# -- the two repr defects ------------------------------------------------------------------------


def test_solution_repr_lists_one_state_unambiguously():
    one = ODESystem.from_equations({"p": "-p"})
    text = repr(integrate(one, [1.0], (0, 1), {}, n_save=3, backend="scipy"))
    assert "states=[p]" in text and "(p)" not in text
    three = ODESystem.from_equations({"p": "-p", "s": "-s", "tau": "0"})
    assert "states=[p, s, tau]" in repr(integrate(three, [1.0, 1.0, 1.0], (0, 1), {}, n_save=3, backend="scipy"))


@pytest.mark.parametrize("names", [STATUSES, BIFURCATION_KINDS, REGIMES, ITERATION_STATUSES],
                         ids=["STATUSES", "BIFURCATION_KINDS", "REGIMES", "ITERATION_STATUSES"])
def test_tuples_of_names_explain_each_name(names):
    text = pydoc.render_doc(names, renderer=pydoc.plaintext)
    assert "Built-in immutable sequence" not in text.split("Method resolution order")[0]
    for name in names:
        line = next(line for line in text.splitlines() if f"{name!r}:" in line)
        assert len(line.split(f"{name!r}:", 1)[1].strip()) > 10  # a meaning, not just the name
    plain = tuple(names)
    assert names == plain and hash(names) == hash(plain) and isinstance(names, tuple)
    assert repr(names) == repr(plain) and names[1:] == plain[1:] and list(names) == list(plain)
    back = pickle.loads(pickle.dumps(names))
    assert back == plain and type(back).__doc__ == type(names).__doc__


def test_statuses_meanings_are_specific():
    text = pydoc.render_doc(STATUSES, renderer=pydoc.plaintext)
    assert "'finished': the run reached t1" in text and "Collapse event" in text and "step budget" in text


# -- HTML tables with known answers ----------------------------------------------------------------


def test_equilibrium_set_html_pitchfork():
    # r x - x^3 at r = 1: x = 0 unstable (f' = 1), x = +-1 stable (f' = -2)
    t = tables(equilibria(pitchfork(), {"r": 1.0}))
    assert t.header[:2] == ["x", "kind"] and "stable" in t.header
    assert len(t.rows) == 3
    got = sorted((float(r[0]), r[t.header.index("stable")]) for r in t.rows)
    assert [x for x, _ in got] == pytest.approx([-1.0, 0.0, 1.0], abs=1e-12)
    assert [s for _, s in got] == ["True", "False", "True"]
    assert "complete" in "".join(t.text)


def test_bifurcation_html_and_repr_pitchfork():
    b = bifurcation(pitchfork(), ("r", np.linspace(-1, 1, 21)), {"r": 0.0})
    t = tables(b)
    assert t.header == ["kind", "r", "x"]
    assert len(t.rows) == 1 and t.rows[0][0] == "pitchfork"
    assert abs(float(t.rows[0][1])) < 1e-8 and abs(float(t.rows[0][2])) < 1e-6
    text = repr(b)
    assert "pitchfork at" in text and "\n" not in text and len(text) < 300 and "array" not in text
    assert len(repr(b.branches[0])) < 120


def test_threshold_html_tian_fold():
    t = tables(threshold(tian(), "eta"))
    fold = next(r for r in t.rows if r[0] == "fold")
    c = sp.Symbol("c", positive=True)
    (sol,) = [sp.sympify(s, locals={"c": c}) for s in fold[2].split(",")]
    assert sp.simplify(sol - 1 / (4 * c)) == 0
    # r x - x^3: one pitchfork at r = 0, listed once (not also as a fold and a transcritical point)
    assert tables(threshold(pitchfork(), "r")).rows == [["pitchfork", "–", "0"]]


def test_batch_roots_html_counts_against_the_fold():
    # eta below 1/(4c): three real roots, two stable (0 and the larger); above: one real, stable
    eta = np.linspace(0.001, 0.5, BIG)
    r = roots_batch(tian(), {"c": 1.0, "eta": eta}, progress=False)
    below = int(np.sum(eta < 0.25))
    t = tables(r)
    counts = {(int(a), int(b)): int(n) for a, b, n in t.rows}
    assert counts == {(3, 2): below, (1, 1): BIG - below}
    text = repr(r)
    assert len(text) < 200 and "\n" not in text and f"3 real/2 stable: {below}" in text


def test_regimes_html_fractions_against_the_fold():
    eta = np.linspace(0.0105, 0.5, 40)
    c = np.linspace(0.55, 3.0, 30)
    m = regimes(tian(), ("eta", eta), ("c", c), {"c": 1.0, "eta": 0.1}, progress=False)
    E, C = np.meshgrid(eta, c)
    bistable = float(np.mean(E < 1 / (4 * C)))
    t = tables(m)
    fractions = {row[0]: float(row[1]) for row in t.rows}
    assert fractions == pytest.approx({"bistable": bistable, "collapse only": 1 - bistable}, abs=1e-6)
    assert len(repr(m)) < 250 and "\n" not in repr(m)


def test_comparison_html_rows_and_values():
    errors = {16: {"exact": {"p": 0.01, "s": 0.02, "status": "finished"},
                   "leading": {"p": 0.3, "s": 0.4, "status": "finished"}},
              64: {"exact": {"p": 0.001, "s": 0.002, "status": "finished"},
                   "leading": {"status": "skipped (too wide)"}}}
    comp = Comparison(widths=(16, 64), networks={16: None, 64: None}, predictions={}, errors=errors,
                      params={}, floor={16: {"label": "seed 1", "p": 0.005, "s": 0.006}})
    t = tables(comp)
    assert t.header == ["h", "approximation", "max rel err p", "max rel err s", "status"]
    assert len(t.rows) == 5
    assert t.rows[1] == ["16", "leading", "0.3", "0.4", "finished"]
    assert t.rows[2][:4] == ["16", "network floor: seed 1", "0.005", "0.006"]
    assert t.rows[4] == ["64", "leading", "–", "–", "skipped (too wide)"]


def test_solution_iteration_html_and_short_reprs_for_a_big_batch():
    n_t = 5
    status = np.array(["finished"] * (BIG - 300) + ["collapsed"] * 200 + ["blew_up"] * 100)
    sol = Solution(t=np.linspace(0, 2, n_t), y=np.zeros((BIG, n_t, 2)), valid=np.ones((BIG, n_t), bool),
                   status=status, event=np.full(BIG, ""), event_t=np.full(BIG, np.nan), t_end=np.full(BIG, 2.0),
                   y_end=np.zeros((BIG, 2)), n_steps=np.ones(BIG, int), messages=np.full(BIG, ""),
                   retried=np.zeros(BIG, bool), state_names=("p", "s"), backend="jax")
    text = repr(sol)
    assert len(text) < 250 and "\n" not in text and "states=[p, s]" in text
    t = tables(sol)
    assert {r[0]: int(r[1]) for r in t.rows} == {"finished": BIG - 300, "collapsed": 200, "blew_up": 100}
    assert "(10000,)" in "".join(t.text)
    it = Iteration(steps=np.arange(0, 11), t=np.arange(0, 11.0), y=np.zeros((BIG, 11, 3)),
                   valid=np.ones((BIG, 11), bool), status=np.where(np.arange(BIG) < 7, "blew_up", "finished"),
                   end_step=np.full(BIG, 10), state_names=("p", "s", "tau"))
    assert len(repr(it)) < 200
    assert {r[0]: int(r[1]) for r in tables(it).rows} == {"finished": BIG - 7, "blew_up": 7}


def test_network_run_html_and_repr():
    from derivations import ModelSpec

    n, h = 61, 512
    t = np.linspace(0, 3, n)
    p = np.outer(1 + t, np.linspace(0.1, 1, h))
    s = np.outer(np.exp(-t), np.linspace(0.2, 2, h))
    run = dynamics.NetworkRun(t=t, p=p, s=s, tau=np.ones((n, h)), p_eig=p, s_eig=s, psi_norm2=np.ones(n),
                              phi_norm2=np.ones(n), misalignment=np.linspace(0, 1e-3, n), spec=ModelSpec("euclidean"),
                              params={}, h=h, gradient="sampled")
    t = tables(run)
    assert [r[0] for r in t.rows] == ["p", "s", "misalignment"]
    assert [float(v) for v in t.rows[0][1:]] == pytest.approx([0.1, 1.0, 0.4, 4.0], rel=1e-6)
    assert [float(v) for v in t.rows[1][1:]] == pytest.approx([0.2, 2.0, 0.2 * np.exp(-3), 2 * np.exp(-3)], rel=1e-5)
    assert len(repr(run)) < 200 and "\n" not in repr(run)


def test_reprs_of_large_results_stay_short():
    n = 300
    cls = Classification(jacobian=np.eye(n), eigenvalues=np.ones(n, complex), kind="unstable node", stable=False,
                         hyperbolic=True, index=n, reason="all eigenvalues positive")
    assert len(repr(cls)) < 250 and "\n" not in repr(cls)


def test_phase_plane_and_basins_reprs_and_html_lotka_volterra():
    # x' = a x - b x y, y' = -c y + d x y: equilibria (0, 0) (a saddle) and (c/d, a/b) (a centre)
    lv = ODESystem.from_equations({"x": "a*x - b*x*y", "y": "-c*y + d*x*y"}, params=("a", "b", "c", "d"),
                                  state_domain={"x": (0, None), "y": (0, None)}, name="Lotka-Volterra")
    params = {"a": 1.0, "b": 0.5, "c": 0.75, "d": 0.25}
    plane = dynamics.phase_plane(lv, params, n_grid=11, trajectories=2)
    for text in (repr(plane), *map(repr, plane.trajectories), *map(repr, plane.manifolds)):
        assert len(text) < 300 and "\n" not in text and "array" not in text
    rows = tables(plane).rows
    assert [r[1] for r in rows] == ["saddle", "centre"]
    assert rows[1][0] == "x=3, y=2"  # (c/d, a/b)
    # x' = x - x^3 on a grid: x0 > 0 goes to 1, x0 < 0 to -1 (both stable nodes), x0 = 0 stays
    bistable = ODESystem.from_equations({"x": "x - x^3", "y": "-y"}, params=())
    grid = {"x": np.linspace(-1.05, 1.05, 8), "y": np.linspace(-1, 1, 5)}  # no grid point at x = 0
    b = dynamics.basins(bistable, grid, {}, t1=30.0, progress=False)
    assert len(repr(b)) < 300 and "\n" not in repr(b) and "array" not in repr(b)
    shares = {r[1]: float(r[3]) for r in tables(b).rows}
    assert shares == {"x=-1, y=0": 0.5, "x=1, y=0": 0.5, "none (or it left)": 0.0}
