"""to_xppaut: the exported .ode file read back by an independent parser and evaluated against the
system's own NumPy right-hand side; bad inputs; and (where XPPAUT is installed) a run of the
file in batch mode against dynamics.integrate."""

import re
import shutil
import subprocess

import numpy as np
import pytest
import sympy as sp
from sympy.parsing.sympy_parser import parse_expr

from derivations import ModelSpec, ODESystem, couple, derive, to_xppaut

# XPP's names of the functions the exporter may use, as SymPy functions
_XPP_FUNCTIONS = {"exp": sp.exp, "ln": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs, "sin": sp.sin, "cos": sp.cos,
                  "tan": sp.tan, "atan": sp.atan, "tanh": sp.tanh, "heav": lambda x: sp.Heaviside(x, 1),
                  "min": sp.Min, "max": sp.Max, "flr": sp.floor, "ceil": sp.ceiling, "erf": sp.erf,
                  "sign": sp.sign, "pi": sp.pi}


def read_ode(text):
    """Parse an .ode file: (par {name: value}, init {name: value}, equations {name: expr},
    options {key: value}), names as written in the file."""
    par, init, temps, eqs, opts = {}, {}, {}, {}, {}
    lines = text.splitlines()
    assert lines[-1] == "done"
    for line in lines[:-1]:
        if not line or line.startswith("#"):
            continue
        assert len(line) <= 1024, "XPP's line limit"
        key, _, rest = line.partition(" ")
        if key in ("par", "init", "@"):
            target = {"par": par, "init": init, "@": opts}[key]
            for item in rest.split(","):
                k, v = item.strip().split("=")
                target[k] = float(v) if key != "@" else v
            continue
        equation = re.fullmatch(r"(\w+)' = (.+)", line)
        temporary = re.fullmatch(r"(\w+)=(.+)", line)
        assert equation or temporary, f"unexpected line {line!r}"
        name, expr = (equation or temporary).groups()
        # XPP's ^ is left-associative, Python's ** right-associative: a chain would be ambiguous
        assert not re.search(r"\^[\w.]+\^", expr) and "**" not in expr, expr
        (eqs if equation else temps)[name] = expr
    table = {n: sp.Symbol(n) for n in list(par) + list(init) + list(temps)}
    local = {**_XPP_FUNCTIONS, **table}
    # no SymPy namespace: a name the file does not define stays an unknown Symbol or Function
    bare = {"Integer": sp.Integer, "Float": sp.Float, "Rational": sp.Rational, "Symbol": sp.Symbol,
            "Function": sp.Function}

    def parse(expr):
        out = parse_expr(expr.replace("^", "**"), local_dict=local, global_dict=bare)
        assert not out.atoms(sp.core.function.AppliedUndef), expr
        return out

    parsed = {}
    for name, expr in temps.items():  # temporaries are defined before use, in order
        parsed[table[name]] = parse(expr).subs(parsed)
    equations = {n: parse(e).subs(parsed) for n, e in eqs.items()}
    for e in equations.values():
        assert e.free_symbols <= {table[n] for n in list(par) + list(init)}
    return par, init, equations, opts


def check_against_system(system, params, y0, text, n_points=20, seed=0):
    """The file's equations equal system.to_numpy() at random states and parameters (1e-12 rel)."""
    par, init, equations, _ = read_ode(text)
    # names back by position: par lines follow system.params, init lines system.states
    assert len(par) == len(system.params) and len(init) == len(system.states)
    to_orig = dict(zip(par, system.param_names)) | dict(zip(init, system.state_names))
    assert [to_orig[n] for n in equations] == list(system.state_names)
    assert {to_orig[k]: v for k, v in par.items()} == pytest.approx({k: float(v) for k, v in params.items()}, rel=1e-15)
    assert [init[n] for n in init] == pytest.approx(list(y0), rel=1e-15)
    f = system.to_numpy()
    xpp_names = list(par) + list(init)
    g = sp.lambdify([sp.Symbol(n) for n in xpp_names], list(equations.values()), "numpy")
    rng = np.random.default_rng(seed)
    for _ in range(n_points):
        pv = {k: float(v) * rng.uniform(0.5, 1.5) for k, v in params.items()}
        y = np.asarray(y0, dtype=float) * rng.uniform(0.5, 1.5, len(y0)) + rng.uniform(0.01, 0.1, len(y0))
        want = f(0.0, y, pv)
        byname = {k: pv[to_orig[k]] for k in par} | {k: y[i] for i, k in enumerate(init)}
        got = np.array(g(*[byname[n] for n in xpp_names]), dtype=float)
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14 * np.max(np.abs(want)))


def textbook():
    """Clashing names: T (XPP time), Ln (reserved), a 10-character name, ab/AB (XPP is
    case-insensitive); functions XPP spells differently (ln, abs); powers that XPP parses
    left-associatively and a negative exponent."""
    return ODESystem.from_equations(
        {"x": "T*x - x^3 + ab*log(1 + y^2) - AB*exp(-x)", "y": "-Ln*y + sqrt(1 + x^2)*abs(y)^(-1/3) + x^(y^2)",
         "longstate1": "y*x^(-2) - longstate1 + sin(x)*tanh(y)"},
        params=("T", "Ln", "ab", "AB"), name="textbook")


def test_textbook_system_round_trip_with_renamed_names():
    system = textbook()
    params = {"T": 1.5, "Ln": 0.3, "ab": 0.25, "AB": 2.0}
    y0 = (1.1, 0.7, 0.2)
    text = to_xppaut(system, params, y0=y0)
    par, init, _, opts = read_ode(text)
    names = [n.lower() for n in list(par) + list(init)]
    assert len(set(names)) == len(names)
    assert all(len(n) <= 9 and n not in ("t", "ln", "pi") for n in names)
    assert "T" not in par and "Ln" not in par and "longstate1" not in init
    assert "#   T_1 = T" in text.splitlines()
    assert opts["xp"] == "x" and opts["yp"] == "y"
    check_against_system(system, params, y0, text)


def test_derived_systems_cosine_frozen_and_euclidean_ema():
    cosine = derive(ModelSpec(loss="cosine", target="simsiam", norms="frozen"))
    params = {"sigma2": 0.1, "eta": 0.01, "alpha_p": 1.0, "N_psi": 1.2, "N_phi": 0.9, "T": 0.3}
    check_against_system(cosine, params, (0.5, 0.6), to_xppaut(cosine, params, y0=(0.5, 0.6)))
    ema = derive(ModelSpec(loss="euclidean", target="ema"))
    params = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 0.5, "beta": 0.3}
    y0 = {"p": 0.4, "s": 0.3, "tau": 0.9}
    check_against_system(ema, params, list(y0.values()), to_xppaut(ema, params, y0=y0))


def test_coupled_three_mode_system(tmp_path):
    modes = couple(derive(ModelSpec(loss="cosine", target="simsiam", norms="frozen")), K=3)
    params = {"sigma2": 0.1, "eta": 0.01, "alpha_p": 1.0, "N_psi": 1.2, "N_phi": 0.9, "T": 0.3}
    y0 = (0.5, 0.4, 0.3, 0.6, 0.5, 0.4)
    path = tmp_path / "modes.ode"
    text = to_xppaut(modes, params, y0=y0, path=path)  # a ModeSystem goes through to_ode_system()
    assert path.read_text() == text
    check_against_system(modes.to_ode_system(), params, y0, text, n_points=5)


def test_long_right_hand_side_is_split_into_temporaries():
    terms = " + ".join(f"c{k}*(x + y/{k})^2*exp(-(x - {k}/10)^2)" for k in range(1, 40))
    system = ODESystem.from_equations({"x": terms, "y": "-y + x"}, params=tuple(f"c{k}" for k in range(1, 40)))
    params = {f"c{k}": 1.0 / k for k in range(1, 40)}
    text = to_xppaut(system, params, y0=(0.2, 0.1))
    assert any(re.fullmatch(r"w\d+=.+", line) for line in text.splitlines())
    check_against_system(system, params, (0.2, 0.1), text, n_points=5)


def test_defaults_and_options():
    system = ODESystem.from_equations({"x": "-k*x", "s": "-s"}, params=("k",), state_domain={"s": (1, 3)})
    text = to_xppaut(system, {"k": 2}, options={"total": 5, "dt": 0.1, "meth": "5dp", "yp": "x", "xp": "s"})
    _, init, _, opts = read_ode(text)
    assert init == {"x": 0.0, "s": 2.0}  # 0 where the domain holds it, else inside the domain
    assert opts["total"] == "5" and opts["meth"] == "5dp" and opts["xp"] == "s" and opts["yp"] == "x"
    assert "maxstor" not in opts
    assert "maxstor" in read_ode(to_xppaut(system, {"k": 2}, options={"total": 1000, "dt": 0.01}))[3]
    one = ODESystem.from_equations({"x": "1 - x"}, name="no params")
    assert "par" not in [line.split(" ")[0] for line in to_xppaut(one).splitlines()]


@pytest.mark.parametrize(
    "build, kwargs, exc, match",
    [
        (lambda: textbook(), {"params": None}, ValueError, r"missing \['T', 'Ln', 'ab', 'AB'\]"),
        (lambda: textbook(), {"params": {"T": 1, "Ln": 1, "ab": 1}}, ValueError, r"missing \['AB'\]"),
        (lambda: textbook(), {"params": {"T": 1, "Ln": 1, "ab": 1, "AB": 1, "zz": 1}}, ValueError, "zz"),
        (lambda: textbook(), {"params": {"T": 1, "Ln": 1, "ab": 1, "AB": float("nan")}}, ValueError, "finite"),
        (lambda: ODESystem(("x",), (), [sp.gamma(sp.Symbol("x"))]), {}, ValueError, "gamma.*no counterpart"),
        (lambda: ODESystem(("x",), (), [sp.Piecewise((1, sp.Symbol("x") > 0), (0, True))]), {}, ValueError, "Piecewise"),
        (lambda: ODESystem(("x",), (), [sp.I * sp.Symbol("x")]), {}, ValueError, "ImaginaryUnit"),
        (lambda: ODESystem(("x",), (), [-sp.Symbol("x")]), {"y0": (1, 2)}, ValueError, "2 values for 1 states"),
        (lambda: ODESystem(("x",), (), [-sp.Symbol("x")]), {"y0": {"z": 1}}, ValueError, "unknown"),
        (lambda: ODESystem(("x",), (), [-sp.Symbol("x")], state_domain={"x": (0, None)}), {"y0": [-1]}, ValueError,
         "outside"),
        (lambda: ODESystem(("x",), (), [-sp.Symbol("x")]), {"y0": "1"}, TypeError, "y0"),
        (lambda: ODESystem(("x",), (), [-sp.Symbol("x")]), {"options": {"meth": "a b"}}, ValueError, "single words"),
        (lambda: ODESystem(("x",), (), [-sp.Symbol("x")]), {"options": {"total": True}}, TypeError, "total"),
        (lambda: ODESystem(("x",), (), [-sp.Symbol("x")]), {"options": [("total", 1)]}, TypeError, "options"),
        (lambda: "x' = -x", {}, TypeError, "ODESystem"),
    ],
)
def test_bad_input(build, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        to_xppaut(build(), **kwargs)


@pytest.mark.skipif(shutil.which("xppaut") is None, reason="XPPAUT is not installed")
def test_xppaut_integrates_the_file_like_integrate(tmp_path):
    from dynamics import integrate

    system = derive(ModelSpec(loss="euclidean", target="ema"))
    params = {"sigma2": 0.2, "eta": 0.05, "alpha_p": 0.5, "beta": 0.3}
    y0 = (0.4, 0.3, 0.9)
    to_xppaut(system, params, y0=y0, path=tmp_path / "ema.ode",
              options={"total": 4, "dt": 0.5, "meth": "5dp", "toler": 1e-12, "atoler": 1e-12})
    subprocess.run(["xppaut", "ema.ode", "-silent"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    out = np.loadtxt(tmp_path / "output.dat")
    ref = integrate(system, y0, (0.0, 4.0), params, t_eval=out[:, 0], rtol=1e-12, atol=1e-12, backend="scipy")
    # XPP stores its orbits in single precision
    np.testing.assert_allclose(out[:, 1:], ref.y, rtol=2e-7, atol=1e-7)
