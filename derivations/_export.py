"""to_xppaut(system, params, y0=...): an ODESystem as an XPPAUT ``.ode`` file, for AUTO continuation.

The file holds a comment header, ``par`` and ``init`` lines, one ``name' = rhs`` line per
state in XPP syntax, ``@`` numerics options and ``done``. XPP names are case-insensitive, at
most ``XPP_MAX_NAME`` characters of letters, digits and underscores starting with a letter,
and must not be one of XPP's reserved words (``t``, ``pi``, ``ln``, ``heav``, ...): names
that break these rules are renamed deterministically and the mapping is written as comments.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from typing import Union

import sympy as sp
from sympy.printing.str import StrPrinter

from .codegen import float_bounds
from ._coupled import ModeSystem
from ._interface import DynamicalSystem
from ._system import ODESystem

__all__ = ["to_xppaut", "XPP_MAX_NAME", "XPP_RESERVED"]

XPP_MAX_NAME = 9
"""The longest name written (XPP 6.11 rejects names of 11 characters; older versions 10)."""

XPP_RESERVED = frozenset(
    """sin cos tan atan atan2 sinh cosh tanh exp delay ln log log10 t pi if then else asin acos heav
    sign ceil flr ran abs del_shft max min normal besselj bessely besseli erf erfc hom_bcs shift not
    int sum of i arg1 arg2 arg3 arg4 arg5 arg6 arg7 arg8 arg9 par init done aux wiener table global
    set number only export sqrt mod markov special bdry volterra""".split()
)
"""Words an XPP name must not be (compared in lower case: XPP is case-insensitive)."""

_MAX_LINE = 1000  # XPP's limit on one expression

_FUNCTIONS = {
    sp.exp: "exp", sp.log: "ln", sp.sin: "sin", sp.cos: "cos", sp.tan: "tan", sp.asin: "asin",
    sp.acos: "acos", sp.atan: "atan", sp.sinh: "sinh", sp.cosh: "cosh", sp.tanh: "tanh",
    sp.atan2: "atan2", sp.Abs: "abs", sp.sign: "sign", sp.floor: "flr", sp.ceiling: "ceil",
    sp.erf: "erf", sp.erfc: "erfc", sp.Heaviside: "heav", sp.Min: "min", sp.Max: "max",
}

_OPTION_VALUE = re.compile(r"^[A-Za-z0-9_.+-]+$")

PathLike = Union[str, "os.PathLike[str]"]


class _XppPrinter(StrPrinter):
    """SymPy's str printer with XPP's names: ``^`` for powers (the exponent parenthesised
    unless a symbol or a non-negative integer: XPP's ``^`` is left-associative and rejects
    ``a^-1``), ``ln`` for log, ``heav`` for Heaviside, binary min/max."""

    def __init__(self, names: Mapping[str, str]):
        super().__init__({"full_prec": True})
        self._names = names

    def _print_Symbol(self, expr):
        return self._names[str(expr)]

    _print_Dummy = _print_Symbol

    def _print_Exp1(self, expr):
        return "exp(1)"

    def _print_Pi(self, expr):
        return "pi"

    def _print_Pow(self, expr, rational=False):
        base, e = expr.as_base_exp()
        if e == sp.Rational(1, 2):
            return f"sqrt({self._print(base)})"
        if e == -1:
            return f"1/{self._atom(base)}"
        if e == sp.Rational(-1, 2):
            return f"1/sqrt({self._print(base)})"
        exponent = self._print(e)
        if not ((e.is_Integer and e >= 0) or e.is_Symbol):
            exponent = f"({exponent})"
        return f"{self._atom(base)}^{exponent}"

    def _atom(self, expr) -> str:
        text = self._print(expr)
        simple = expr.is_Symbol or (expr.is_Integer and expr >= 0) or isinstance(expr, (sp.Function, sp.core.numbers.Pi))
        return text if simple else f"({text})"

    def _print_Function(self, expr):
        name = _FUNCTIONS[expr.func]
        args = expr.args[:1] if expr.func is sp.Heaviside else expr.args
        if expr.func in (sp.Min, sp.Max) and len(args) > 2:
            return f"{name}({self._print(args[0])},{self._print(expr.func(*args[1:]))})"
        return f"{name}({','.join(self._print(a) for a in args)})"

    _print_Abs = _print_Function
    _print_Heaviside = _print_Function
    _print_Min = _print_Function
    _print_Max = _print_Function
    _print_exp = _print_Function
    _print_log = _print_Function
    _print_sign = _print_Function
    _print_floor = _print_Function
    _print_ceiling = _print_Function
    _print_erf = _print_Function
    _print_erfc = _print_Function

    def _print_Float(self, expr):
        return repr(float(expr))


def _check_expr(expr: sp.Expr, where: str) -> None:
    """Raise ValueError for anything XPP cannot evaluate (unknown functions, non-real numbers)."""
    for node in sp.preorder_traversal(expr):
        if node.is_Symbol or node.is_Add or node.is_Mul or node.is_Pow or node in (sp.pi, sp.E):
            continue
        if node.is_Number:
            if not (node.is_real and node.is_finite):
                raise ValueError(f"{where} contains {node}, which XPP cannot represent")
            continue
        if isinstance(node, sp.Function) and node.func in _FUNCTIONS:
            if node.func is sp.Heaviside and len(node.args) > 1 and node.args[1] != sp.Rational(1, 2):
                raise ValueError(f"{where}: XPP's heav(0) = 1 has no Heaviside value at 0 of {node.args[1]}")
            continue
        kind = node.func.__name__ if isinstance(node, sp.Basic) else type(node).__name__
        raise ValueError(
            f"{where} uses {kind} ({sp.sstr(node)[:60]}), which XPP has no counterpart for; XPP functions: "
            f"{sorted(set(_FUNCTIONS.values()) | {'sqrt'})}"
        )


def _xpp_names(names: Sequence[str]) -> dict[str, str]:
    """Original name -> XPP name: valid names kept, others sanitised, truncated and suffixed
    ``_1``, ``_2``, ... until unique (case-insensitively) and not reserved."""
    valid = re.compile(rf"^[A-Za-z][A-Za-z0-9_]{{0,{XPP_MAX_NAME - 1}}}$")
    taken: set[str] = set()
    out: dict[str, str] = {}
    for n in names:
        if valid.match(n) and n.lower() not in XPP_RESERVED and n.lower() not in taken:
            out[n] = n
            taken.add(n.lower())
    for n in names:
        if n in out:
            continue
        base = re.sub(r"[^A-Za-z0-9_]", "_", n)
        if not base or not base[0].isalpha():
            base = "v" + base
        candidate, k = base[:XPP_MAX_NAME], 0
        while candidate.lower() in taken or candidate.lower() in XPP_RESERVED:
            k += 1
            suffix = f"_{k}"
            candidate = base[: XPP_MAX_NAME - len(suffix)] + suffix
        out[n] = candidate
        taken.add(candidate.lower())
    return out


def _number(value: object, what: str) -> float:
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a real number; got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what} must be a real number; got {value!r:.60}") from None
    if not math.isfinite(x):
        raise ValueError(f"{what} must be finite; got {value!r}")
    return x


def _default_start(interval: sp.Interval) -> float:
    lo, hi = float_bounds(interval)
    if interval.contains(0) == sp.true:
        return 0.0
    if math.isfinite(lo) and math.isfinite(hi):
        return (lo + hi) / 2
    return lo + 1.0 if math.isfinite(lo) else hi - 1.0


def _initial(system: ODESystem, y0: object) -> dict[str, float]:
    names = system.state_names
    if y0 is None:
        return {n: _default_start(system.state_domain.get(n, sp.Interval(-sp.oo, sp.oo))) for n in names}
    if isinstance(y0, Mapping):
        keys = [str(k) for k in y0]
        unknown = sorted(set(keys) - set(names))
        missing = [n for n in names if n not in keys]
        if unknown or missing:
            raise ValueError(f"y0 must give every state once; missing {missing}, unknown {unknown}; states: {list(names)}")
        values = {str(k): v for k, v in y0.items()}
    elif isinstance(y0, (str, bytes)):
        raise TypeError(f"y0 must be a dict {{state: value}} or a sequence of {len(names)} numbers; got a string")
    else:
        try:
            seq = list(y0)  # type: ignore[call-overload]
        except TypeError:
            raise TypeError(f"y0 must be a dict {{state: value}} or a sequence of {len(names)} numbers; "
                            f"got {type(y0).__name__}") from None
        if len(seq) != len(names):
            raise ValueError(f"y0 has {len(seq)} values for {len(names)} states {list(names)}")
        values = dict(zip(names, seq))
    out = {}
    for n in names:
        x = _number(values[n], f"y0[{n!r}]")
        domain = system.state_domain.get(n)
        if domain is not None and domain.contains(sp.Float(x)) != sp.true:
            raise ValueError(f"y0[{n!r}] = {x!r} is outside the state's domain {domain}")
        out[n] = x
    return out


def _options(system: ODESystem, options: Mapping[str, object] | None, names: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, object] = {"total": 100, "dt": 0.05, "meth": "cvode", "toler": 1e-10, "atoler": 1e-12, "bound": 1e8}
    if system.n_states >= 2:
        out["xp"], out["yp"] = system.state_names[0], system.state_names[1]
    if options is not None:
        if not isinstance(options, Mapping):
            raise TypeError(f"options must be a dict {{XPP option: value}}; got {type(options).__name__}")
        for k, v in options.items():
            if not isinstance(k, str) or not k.isidentifier():
                raise ValueError(f"options keys must be XPP option names; got {k!r}")
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise TypeError(f"options[{k!r}] must be a number or a word; got {v!r:.60}")
            out[k.lower()] = v
    text: dict[str, str] = {}
    for k, v in out.items():
        if isinstance(v, str):
            if k in ("xp", "yp", "zp") and v in names:
                v = names[v]
            if not _OPTION_VALUE.match(v):
                raise ValueError(f"options[{k!r}] = {v!r}: XPP option values are numbers or single words")
            text[k] = v
        else:
            text[k] = repr(_number(v, f"options[{k!r}]")) if isinstance(v, float) else str(v)
    try:
        n_points = float(text["total"]) / float(text["dt"])
        if "maxstor" not in text and n_points + 2 > 5000:
            text["maxstor"] = str(int(n_points) + 100)
    except (KeyError, ValueError, ZeroDivisionError):
        pass
    return text


def _lines(prefix: str, items: Sequence[str], width: int = 200) -> list[str]:
    """``prefix a, b, c`` lines of at most ``width`` characters."""
    out, line = [], []
    for item in items:
        if line and len(prefix) + len(", ".join(line + [item])) > width:
            out.append(f"{prefix} {', '.join(line)}")
            line = []
        line.append(item)
    if line:
        out.append(f"{prefix} {', '.join(line)}")
    return out


def to_xppaut(
    system: DynamicalSystem,
    params: Mapping[str, float] | None = None,
    *,
    y0: Mapping[str, float] | Sequence[float] | None = None,
    path: PathLike | None = None,
    options: Mapping[str, float | int | str] | None = None,
) -> str:
    """The system as an XPPAUT ``.ode`` file (returned, and written to ``path`` if given).

    XPPAUT integrates the file and hands it to AUTO for the continuation of branches,
    periodic orbits and two-parameter curves. The file is::

        # <system name> ...           comment header, and XPP name = original name where renamed
        par a=1.0, b=2.0              the parameter values
        init x=0.1, y=0.0             the initial state
        x' = a*x - x^3                one line per state, d state/dt = rhs in XPP syntax
        @ total=100, dt=0.05, ...     numerics options
        done

    Powers are written ``^`` (exponents other than a symbol or a non-negative integer in
    parentheses, XPP's ``^`` being left-associative), log as ``ln``, Abs as ``abs``, Heaviside
    as ``heav`` (whose value at 0 is 1 in XPP), Min/Max as nested binary ``min``/``max``,
    floor/ceiling as ``flr``/``ceil``. A right-hand side longer than XPP's 1000-character limit
    is split into common subexpressions written as XPP temporary quantities (``name=formula``
    lines before the equations).

    Names: XPP is case-insensitive, takes at most ``XPP_MAX_NAME`` (9) characters of letters,
    digits and underscores starting with a letter, and reserves words such as ``t``, ``pi``,
    ``ln``, ``heav`` (``XPP_RESERVED``). Valid names are kept; the others are sanitised,
    truncated and suffixed ``_1``, ``_2``, ... (states first, then parameters, in order) and
    listed in the header, e.g. the parameter ``T`` becomes ``T_1`` because XPP reads ``T`` as
    time.

    Parameters
    ----------
    system : ODESystem
        Any system (derived, reduced, frozen, built by hand); a ``ModeSystem`` is converted
        with its ``to_ode_system()`` (K <= 64 modes).
    params : mapping name -> number
        A value for every parameter, checked against the system's parameter domains. May be
        omitted only for a system without parameters.
    y0 : mapping state -> number, or a sequence in state order, optional
        The initial state, inside the state domains. Default: 0 for each state whose domain
        contains 0, else a point inside its domain (the midpoint of a bounded interval, one
        unit inside a half-line).
    path : str or path-like, optional
        Where to write the file (overwritten). Default: only return the text.
    options : mapping option -> number or word, optional
        XPP ``@`` options added to or replacing the defaults ``total=100, dt=0.05,
        meth=cvode, toler=1e-10, atoler=1e-12, bound=1e8`` (and ``xp``, ``yp`` = the first two
        states for a system with two or more states; ``maxstor`` grows with total/dt). State
        names given for ``xp``/``yp``/``zp`` are translated to their XPP names. AUTO's options
        (``ntst``, ``nmax``, ``parmin``, ``parmax``, ``dsmax``, ...) pass through.

    Returns
    -------
    str
        The text of the ``.ode`` file.

    Raises
    ------
    TypeError
        ``system`` has no explicit equations (``symbolic`` is None); a value that is not a real number; a
        ``y0`` or ``options`` of the wrong kind.
    ValueError
        Missing or unknown parameter names (listed), values outside the domains, non-finite
        values; a ``y0`` of the wrong length or naming unknown states; a right-hand side using
        a function XPP lacks (e.g. ``gamma``, ``Piecewise``) or a non-real constant; an option
        value that is not a number or a single word.
    """
    system, values = _xpp_system_and_values(system, params)
    start = _initial(system, y0)
    names = _xpp_names(list(system.state_names) + list(system.param_names))
    rhs, temps = _xpp_equations(system, names)
    opts = _options(system, options, names)
    text = _xpp_text(system, names, values, start, rhs, temps, opts)
    if path is not None:
        _write_ascii(path, text)
    return text


def _xpp_system_and_values(system: object, params: object) -> tuple[ODESystem, dict[str, float]]:
    """The system as an ODESystem and a checked float for every parameter."""
    if isinstance(system, ModeSystem):
        system = system.to_ode_system()  # the explicit equations of K <= 64 coupled modes
    if not isinstance(system, DynamicalSystem) or system.symbolic is None:
        raise TypeError(f"system must be a DynamicalSystem with explicit equations (an ODESystem, or a ModeSystem of "
                        f"K <= 64 modes); got {type(system).__name__}")
    system = system.symbolic
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict {{name: value}}; got {type(params).__name__}")
    missing = [n for n in system.param_names if n not in {str(k) for k in params}]
    if missing:
        raise ValueError(
            f"params must give a value for every parameter of {system.name or 'the system'}; missing {missing} "
            f"(parameters: {list(system.param_names)})"
        )
    checked = system.check_params(params)
    return system, {n: _number(v, f"params[{n!r}]") for n, v in checked.items()}


def _xpp_equations(system: ODESystem, names: dict[str, str]) -> tuple[list[str], list[str]]:
    """The right-hand sides in XPP syntax and, where one is longer than XPP's line limit, the
    temporary quantities they are split into."""
    for i, r in enumerate(system.rhs):
        _check_expr(r, f"d{system.state_names[i]}/dt")
    printer = _XppPrinter(names)
    rhs = [printer.doprint(r) for r in system.rhs]
    temps: list[str] = []
    if any(len(r) > _MAX_LINE for r in rhs):
        rhs, temps = _split(system, names)
    return rhs, temps


def _xpp_text(system: ODESystem, names: Mapping[str, str], values: Mapping[str, float], start: Mapping[str, float],
              rhs: Sequence[str], temps: Sequence[str], opts: Mapping[str, str]) -> str:
    """The ``.ode`` file: header (with the renamed names), par, init, temporaries, equations,
    options, done."""
    label = system.name or "ODE system"
    head = [f"# {label}", "# exported by ncdyn (derivations.to_xppaut): d state/dt = rhs, one line per state"]
    renamed = [(orig, new) for orig, new in names.items() if orig != new]
    if renamed:
        head.append("# XPP names (case-insensitive, at most 9 characters, no reserved words):")
        head += [f"#   {new} = {orig}" for orig, new in renamed]
    body = _lines("par", [f"{names[n]}={values[n]!r}" for n in system.param_names]) if system.params else []
    body += _lines("init", [f"{names[n]}={start[n]!r}" for n in system.state_names])
    body += list(temps)
    body += [f"{names[n]}' = {r}" for n, r in zip(system.state_names, rhs)]
    body += _lines("@", [f"{k}={v}" for k, v in opts.items()])
    return "\n".join(head + body + ["done"]) + "\n"


def _write_ascii(path: object, text: str) -> None:
    """Writes ``text`` to ``path`` (overwritten)."""
    try:
        with open(os.fspath(path), "w", encoding="ascii") as fh:
            fh.write(text)
    except TypeError:
        raise TypeError(f"path must be a str or path-like; got {type(path).__name__}") from None


def _split(system: ODESystem, names: dict[str, str]) -> tuple[list[str], list[str]]:
    """Right-hand sides short enough for XPP, and the ``name=formula`` lines (XPP temporary
    quantities, defined in order before use) they refer to: common subexpressions first, then
    sums and products too long for one line cut into partial sums and products."""
    taken = {v.lower() for v in names.values()}
    counter = iter(range(1, 10**9))
    local = dict(names)
    printer = _XppPrinter(local)
    temps: list[str] = []

    def temporary(expr: sp.Expr) -> sp.Symbol:
        while True:
            name = f"w{next(counter)}"
            if name.lower() not in taken and name.lower() not in XPP_RESERVED:
                break
        taken.add(name.lower())
        sym = sp.Dummy(name)
        local[str(sym)] = name
        temps.append(f"{name}={printer.doprint(expr)}")
        return sym

    def short(expr: sp.Expr) -> sp.Expr:
        if len(printer.doprint(expr)) <= _MAX_LINE // 2:
            return expr
        if expr.is_Add or expr.is_Mul:
            groups: list[list[sp.Expr]] = [[]]
            for arg in (short(a) for a in expr.args):
                if groups[-1] and len(printer.doprint(expr.func(*groups[-1], arg))) > _MAX_LINE // 2:
                    groups.append([])
                groups[-1].append(arg)
            parts = [temporary(expr.func(*g)) if len(g) > 1 else g[0] for g in groups]
            return expr.func(*parts)
        if expr.args:
            return expr.func(*[a if len(printer.doprint(a)) <= _MAX_LINE // 2 else temporary(short(a)) for a in expr.args])
        return expr

    pairs, reduced = sp.cse(list(system.rhs), symbols=(sp.Dummy(f"c{k}") for k in range(10**9)))
    replaced: dict[sp.Symbol, sp.Expr] = {}
    for sym, expr in pairs:
        new = temporary(short(expr.xreplace(replaced)))
        replaced[sym] = new
    rhs = [short(r.xreplace(replaced)) for r in reduced]
    texts = [printer.doprint(r) for r in rhs]
    if any(len(t) > _MAX_LINE for t in texts + temps):
        raise ValueError(f"{system.name or 'the system'} has an expression that stays longer than XPP's "
                         f"{_MAX_LINE} characters after splitting")
    return texts, temps
