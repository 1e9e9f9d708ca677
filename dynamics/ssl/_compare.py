"""compare(): eigenmode predictions against the trained linear network (width by width), or
against trajectories recorded elsewhere (arrays of time x modes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from numpy.typing import ArrayLike

from derivations import DynamicalSystem, EigenmodeModel, FrozenMap, ModelSpec, Params, derive, network_params

from .._display import html_table
from .._integrate import integrate
from .._iterate import iterate
from .._progress import check_progress, progress_bar
from .._tolerance import COARSE_RTOL
from .._value import Value
from ._network import NetworkRun, default_spectrum, simulate_network

__all__ = ["compare", "Comparison", "Reference", "approximations_for", "EXACT_LABEL", "MAX_EXACT_WIDTH"]


EXACT_LABEL = "exact (finite width)"
"""The label of the exact finite-width flow (``norms="exact"``) in ``approximations_for``."""

MAX_EXACT_WIDTH = 1000
"""compare's default ``max_exact_width``: the widest at which the exact flow's quadrature was
checked. Its cost grows like the width K (94^2 K per right-hand side), the sampled network's
like h^2 times the batch: integrating t in [0, 3] took 0.6 s at K = 64 and 256 and 2.8 s at
K = 1000, against 5, 47 and 390 s of network training at the same widths (timings:
``benchmarks/README.md``)."""


def approximations_for(loss: str | ModelSpec, target: str = "simsiam") -> dict[str, ModelSpec]:
    """The eigenmode approximations of one network: label -> ModelSpec.

    A loss without norms (polynomial in A, B, C, e.g. Euclidean, IsoLoss-Euclidean): the
    derived eigenmode system itself, labelled by the loss name. A loss with norms (cosine-like):
    the exact finite-width flow (``norms="exact"``, labelled ``EXACT_LABEL``) where the spec
    admits it (the cosine loss, with or without stop-gradient, and IsoLoss-cosine), exact moments and leading-order moments,
    both with self-consistent norms, and exact moments with norms frozen at their initial
    values; every other option of the spec kept.

    Parameters
    ----------
    loss : a loss name (with ``target``) or a whole ModelSpec.
    target : the target ("simsiam", "ema") when ``loss`` is a name.

    Returns
    -------
    dict label -> ModelSpec, the exact flow first where it exists.

    Raises
    ------
    ValueError / TypeError from ModelSpec for an unknown loss or target.
    """
    spec = loss if isinstance(loss, ModelSpec) else ModelSpec(loss, target)
    if not spec.involves_norms:
        return {spec.loss if isinstance(spec.loss, str) else "derived": spec}
    out: dict[str, ModelSpec] = {}
    try:  # ModelSpec itself decides which models have an exact flow
        out[EXACT_LABEL] = replace(spec, norms="exact")
    except ValueError:
        pass
    out |= {
        "exact, self-consistent norms": replace(spec, norms="self-consistent", moments="exact"),
        "leading, self-consistent norms": replace(spec, norms="self-consistent", moments="leading"),
        "exact, norms frozen at t=0": replace(spec, norms="frozen", moments="exact"),
    }
    return out


@dataclass(frozen=True, repr=False, eq=False)
class Reference(Value):
    """Mode trajectories recorded elsewhere: ``t`` (n,) and per state an array (n, K).

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    t : numpy.ndarray
        The record times, shape (n,).
    data : dict of str -> numpy.ndarray
        Per state name, the mode values, shape (n, K).
    label : str
        A name for tables.
    """

    t: np.ndarray
    data: dict
    label: str = "reference"

    def values(self) -> dict[str, np.ndarray]:
        """The recorded mode values (what ``NetworkRun.values`` gives for a network).

        Returns
        -------
        dict of str -> numpy.ndarray
            ``{state: (n, K) array}``, a new dict.
        """
        return dict(self.data)

    def __repr__(self) -> str:
        K = next(iter(self.data.values())).shape[-1]
        return f"Reference({self.label}: states {sorted(self.data)}, {len(self.t)} times in [{self.t[0]:g}, {self.t[-1]:g}], K={K})"


@dataclass(frozen=True, repr=False, eq=False)
class Comparison(Value):
    """Recorded runs (networks or a reference) and eigenmode predictions, with their errors.

    h is the width (number of modes K for a reference). ``errors[h][label]`` holds, maximised
    over the record times where the prediction is valid:

    - state names ("p", "s", "tau"): relative L2 error over the modes,
      ``||x_ode - x_ref|| / ||x_ref||``;
    - "p_shape": L2 error of the scale-free predictor spectrum ``p / ||p||`` (what the cosine
      loss sees), where the theory has a predictor state p;
    - "psi_norm2": relative error of ``||Psi||_F^2`` (same condition);
    - "status": the ODE's Solution status (or the Iteration status in discrete time), or
      "skipped (why)" for a theory left out at that width (then no numbers and no
      prediction: see ``compare``'s ``max_exact_width``).

    ``floor[h]`` (network mode with ``floor_seed``) is the network's own floor: the same
    errors (doubled) between the network and a second network of another seed (other bases
    and batches, same initial spectrum) at half the step; ``floor[h]["predicted"]`` is what
    the derived SGD noise predicts for that distance (the linear-noise
    spread of ``derive(spec).stochastic(h)`` for both runs), where the model's noise is derived. The sampled network has an O(dt)
    Euler error and sampling noise, smaller in the second run: twice their distance is the
    Richardson estimate of the network's distance from its own flow limit (noise counted
    generously). An exact theory is scored at that floor, not below it.

    A value: immutable (read-only arrays, FrozenMaps for mappings), equal to another result
    when every field is (arrays by value, NaN equal to NaN), and hashable.

    Attributes
    ----------
    widths : tuple of int
        The widths h.
    networks : dict
        ``networks[h]``: the NetworkRun (or the Reference).
    predictions : dict
        ``predictions[h][label]``: the predicted mode values {state: (n, K)}.
    errors : dict
        ``errors[h][label][key]``, as above.
    params : dict
        The network's parameters.
    info : FrozenMap
        The options used (model, t1, dt, ...).
    floor : dict
        ``floor[h][key]``: the network's own floor, with a "label" saying how it was measured.
    """

    widths: tuple[int, ...]
    networks: dict
    predictions: dict[int, dict[str, np.ndarray]]
    errors: dict[int, dict[str, dict[str, float]]]
    params: dict
    info: Mapping[str, object] = field(default_factory=FrozenMap)
    floor: dict[int, dict[str, float | str]] = field(default_factory=dict)

    def _columns(self) -> list[str]:
        keys: list[str] = []
        for errs in self.errors.values():
            for e in errs.values():
                keys += [k for k in e if k != "status" and k not in keys]
        order = ["p", "s", "tau", "p_shape", "psi_norm2"]
        return [k for k in order if k in keys] + [k for k in keys if k not in order]

    def table(self) -> str:
        """The errors as a markdown table.

        Returns
        -------
        str
            One row per width and approximation (and the network floor where measured).
        """
        names = {"p": "max rel err p", "s": "max rel err s", "tau": "max rel err τ", "p_shape": "max err p/‖p‖",
                 "psi_norm2": "max rel err ‖Ψ‖²"}
        cols = self._columns()
        lines = ["| h | approximation | " + " | ".join(names.get(c, f"max rel err {c}") for c in cols) + " | status |",
                 "|---|---|" + "---|" * len(cols) + "---|"]
        for h in self.widths:
            for label, e in self.errors[h].items():
                vals = " | ".join(f"{e[c]:.3g}" if c in e else "" for c in cols)
                lines.append(f"| {h} | {label} | {vals} | {e['status']} |")
            if h in self.floor:
                e = self.floor[h]
                vals = " | ".join(f"{e[c]:.3g}" if c in e else "" for c in cols)
                lines.append(f"| {h} | *network floor: {e['label']}* | {vals} | |")
                if "predicted" in e:
                    pred = e["predicted"]
                    vals = " | ".join(f"{pred[c]:.3g}" if c in pred else "" for c in cols)
                    lines.append(f"| {h} | *floor predicted by the SGD noise* | {vals} | |")
        return "\n".join(lines)

    def within_floor(self, factor: float = 1.0, key: str = "p") -> dict[str, tuple[int, ...]]:
        """Per approximation, the widths at which its error ``key`` is at most ``factor`` times
        the network's own floor (``floor[h][key]``): where it is as good as the network
        itself. Needs ``compare(..., floor_seed=...)``; widths without a floor are left out.

        Parameters
        ----------
        factor : float
            The allowed multiple of the floor (> 0, default 1).
        key : str
            The error compared ("p", "s", "tau", "p_shape", "psi_norm2"; default "p").

        Returns
        -------
        dict of str -> tuple of int
            ``{approximation label: widths where it is within the floor}``.

        Raises
        ------
        ValueError
            No floor was measured, or ``factor`` is not a positive finite number.
        """
        if not self.floor:
            raise ValueError("no network floor was measured: call compare(..., floor_seed=1)")
        if not (isinstance(factor, (int, float)) and not isinstance(factor, bool) and np.isfinite(factor) and factor > 0):
            raise ValueError(f"factor must be a positive finite number; got {factor!r}")
        out: dict[str, tuple[int, ...]] = {}
        for h in self.widths:
            if h not in self.floor:
                continue
            for label, e in self.errors[h].items():
                out.setdefault(label, ())
                if key in e and np.isfinite(e[key]) and e[key] <= factor * self.floor[h][key]:
                    out[label] += (h,)
        return out

    def best(self) -> dict[int, str]:
        """Per width, the approximation with the smallest predictor error (s where no p);
        skipped and failed rows (no number) never win.

        Returns
        -------
        dict of int -> str
            ``{width: approximation label}``.
        """
        def score(e):
            v = e.get("p", e.get("s", np.inf))
            return np.inf if not np.isfinite(v) else v

        return {h: min(errs, key=lambda k: score(errs[k])) for h, errs in self.errors.items()}

    def max_error(self, key: str = "s") -> float:
        """The largest error ``key`` over every width and approximation.

        Parameters
        ----------
        key : str
            The error ("p", "s", "tau", "p_shape", "psi_norm2"; default "s").

        Returns
        -------
        float
            The maximum (NaN if a NaN error is among them).

        Raises
        ------
        ValueError
            No row has the error ``key``.
        """
        return float(max(e[key] for errs in self.errors.values() for e in errs.values() if key in e))

    def __repr__(self) -> str:
        labels = list(next(iter(self.errors.values())))
        what = self.info.get("model", "")
        worst = {k: self.max_error(k) for k in ("p", "s") if any(k in e for errs in self.errors.values() for e in errs.values())}
        return (f"Comparison({what}, widths={self.widths}, approximations={labels}, "
                + ", ".join(f"max rel err {k} = {v:.3g}" for k, v in worst.items()) + ")")

    def _repr_html_(self) -> str:
        names = {"p": "max rel err p", "s": "max rel err s", "tau": "max rel err τ", "p_shape": "max err p/‖p‖",
                 "psi_norm2": "max rel err ‖Ψ‖²"}
        cols = self._columns()
        rows = []
        for h in self.widths:
            for label, e in self.errors[h].items():
                rows.append([h, label] + [e.get(c) for c in cols] + [e["status"]])
            if h in self.floor:
                rows.append([h, f"network floor: {self.floor[h]['label']}"] + [self.floor[h].get(c) for c in cols] + [""])
        what = self.info.get("model", "")
        return html_table(f"Comparison{' of ' + str(what) if what else ''}: theory against "
                          f"{'the network' if all(isinstance(n, NetworkRun) for n in self.networks.values()) else 'the reference'}",
                          ["h", "approximation"] + [names.get(c, f"max rel err {c}") for c in cols] + ["status"], rows)


def _theory_systems(model: Any, approximations: Mapping | None) -> dict[str, Any]:
    """label -> ModelSpec or system, the theories to score."""
    if approximations is not None:
        if not isinstance(approximations, Mapping) or not approximations:
            raise TypeError("approximations must be a non-empty dict {label: ModelSpec or system}")
        return dict(approximations)
    if isinstance(model, ModelSpec):
        return approximations_for(model)
    label = model.name or "system"
    return {label: model}


def _modes(system: DynamicalSystem) -> int:
    """The number of modes a system holds: the common size of its state groups."""
    sizes = {int(np.prod(shape)) for _, shape in system.state_layout}
    if len(sizes) != 1:
        raise ValueError(f"{system.name or 'the system'} has state groups of different sizes {dict(system.state_layout)}; "
                         "a theory holds one value per mode in every group")
    return sizes.pop()


def _numeric(theory: Any, K: int, lr: float | None) -> DynamicalSystem:
    """The numeric K-mode system of one theory (a derived model's ``modes(K)``, or a given
    system whose groups have K entries); the discrete map when ``lr`` is given."""
    if isinstance(theory, ModelSpec):
        theory = derive(theory)
    if isinstance(theory, EigenmodeModel):
        if lr is not None and not theory.is_discrete:
            theory = theory.discrete()
        return theory.modes(K)
    if not isinstance(theory, DynamicalSystem):
        raise TypeError(f"cannot compare against a {type(theory).__name__}; give a ModelSpec, a derived model or a DynamicalSystem")
    if lr is not None and theory.time != "discrete":
        raise ValueError(f"lr is given but {theory.name or 'the system'} is a flow; pass its map (a system with time 'discrete')")
    if _modes(theory) != K:
        raise ValueError(f"the system holds {_modes(theory)} mode(s) per state; the recorded data has K = {K} modes "
                         "(couple a one-mode system with derivations.couple)")
    return theory


def _skip_reason(theory: Any, K: int, lr: float | None, max_exact_width: int | None, explicit: bool) -> str | None:
    """Why a theory is left out at K modes (its status then), or None to run it.

    The exact finite-width flow is left out above ``max_exact_width`` (its cost grows with K;
    explicit or default theories alike). A default theory (``approximations_for``) is also
    left out where it cannot serve: the exact flow below two modes, or a finite learning rate
    when it has no discrete map; an explicitly given theory raises there instead.
    """
    spec = theory if isinstance(theory, ModelSpec) else getattr(theory, "spec", None)
    exact = isinstance(spec, ModelSpec) and spec.norms == "exact"
    if exact and max_exact_width is not None and K > max_exact_width:
        return f"skipped (h > max_exact_width = {max_exact_width})"
    if explicit:
        return None
    if exact and K < 2:
        return "skipped (the exact flow needs h >= 2)"
    if lr is not None:
        derived = derive(theory) if isinstance(theory, ModelSpec) else theory
        if isinstance(derived, DynamicalSystem) and derived.time != "discrete" and not isinstance(derived, EigenmodeModel):
            return "skipped (no discrete map for lr)"
    return None


def _state_names(system: DynamicalSystem) -> tuple[str, ...]:
    return system.group_names


def _pack(system: DynamicalSystem, values: Mapping[str, np.ndarray]) -> np.ndarray:
    """The flat state from per-group arrays (..., K), each reshaped to its group's shape."""
    layout = dict(system.state_layout)
    return system.pack(**{n: np.reshape(values[n], np.shape(values[n])[:-1] + layout[n]) for n in layout})


def _unpack(system: DynamicalSystem, y: np.ndarray) -> dict[str, np.ndarray]:
    """Per-group arrays (..., K) from flat states."""
    layout = dict(system.state_layout)
    return {n: v.reshape(v.shape[:v.ndim - len(layout[n])] + (-1,)) for n, v in system.unpack(y).items()}


def _theory_params(system: Any, params: Mapping, lam: np.ndarray | None, norms0: Mapping, lr: float | None) -> dict:
    """The values of the theory's free parameters: from ``params``, the data spectrum of the
    modes, the norms at t = 0 (frozen norms) and the learning rate."""
    names = system.param_names
    values = {k: params[k] for k in names if k in params and k != "lambda"}
    if "lambda" in names:
        if lam is None:
            raise ValueError("the theory has a data spectrum parameter 'lambda': give lam= or params['lambda']")
        values["lambda"] = np.asarray(lam, dtype=float)
    for k, v in norms0.items():
        if k in names and k not in values:
            values[k] = v
    if "lr" in names:
        if lr is None:
            raise ValueError("the theory is a discrete map with a learning rate 'lr': give lr=")
        values["lr"] = lr
    return values


def _predict(system: Any, y0: np.ndarray, t: np.ndarray, steps: np.ndarray | None, values: dict) -> tuple[dict, np.ndarray, str]:
    """(predicted mode values at the record times, valid mask, status)."""
    if system.time == "discrete":
        if steps is None:
            raise ValueError("a discrete theory needs step-based records (lr=... for the network, or reference times on the lr grid)")
        k = int(np.gcd.reduce(np.diff(steps))) if len(steps) > 1 else 1
        it = iterate(system, y0, int(steps[-1]), values, record_every=k)
        idx = np.searchsorted(it.steps, steps)
        if not np.array_equal(it.steps[idx], steps):
            raise ValueError("the recorded steps are not on the iteration's record grid")
        return _unpack(system, it.y[idx]), it.valid[idx], str(it.status)
    t0 = float(t[0])
    t_span = (t0, float(t[-1])) if t[-1] > t0 else (t0, t0 + 1.0)
    # one trajectory per theory: SciPy's DOP853 needs no compilation (diffrax's costs seconds per system)
    sol = integrate(system, y0, t_span, values, t_eval=t, events=("blow_up",), progress=False, backend="scipy")
    return _unpack(system, sol.y), np.asarray(sol.valid), str(sol.status)


def _errors(ref: Mapping[str, np.ndarray], ode: Mapping[str, np.ndarray], ok: np.ndarray, status: str,
            psi_norm2: np.ndarray | None = None) -> dict[str, Any]:
    def rel(a, b):
        nb = np.linalg.norm(b, axis=-1)
        floor = 1e-300 + 1e-12 * np.max(nb)
        return float(np.max(np.linalg.norm(a - b, axis=-1) / np.maximum(nb, floor)))

    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-300)

    out: dict[str, Any] = {}
    if not np.any(ok):
        return {k: float("nan") for k in ode if k in ref} | {"status": status}
    for k in ode:
        if k in ref:
            out[k] = rel(ode[k][ok], ref[k][ok])
    if "p" in ode and "p" in ref:
        ref_psi = np.sum(ref["p"] ** 2, axis=-1) if psi_norm2 is None else psi_norm2
        psi2_ode = np.sum(ode["p"] ** 2, axis=-1)
        out["p_shape"] = float(np.max(np.linalg.norm(unit(ode["p"][ok]) - unit(ref["p"][ok]), axis=-1)))
        out["psi_norm2"] = float(np.max(np.abs(psi2_ode[ok] - ref_psi[ok]) / ref_psi[ok]))
    out["status"] = status
    return out


def _floor(net: NetworkRun, other: NetworkRun, seed: int, other_seed: int, fine: Mapping) -> dict[str, Any]:
    """The network's own floor: twice the errors of ``other`` (another seed, half the step)
    scored as if it were a prediction of ``net``; without a halved step (discrete time,
    expected flow) the errors themselves.

    With an Euler bias b dt and sampling noise n (n' / sqrt(2) in ``other``),
    net - other = b dt / 2 + n - n' / sqrt(2): twice that is the Richardson estimate b dt of
    the network's distance from its flow limit, plus the noise (counted generously)."""
    ok = np.ones(len(net.t), dtype=bool)
    e = _errors(net.values(), other.values(), ok, "", net.psi_norm2)
    e["psi_norm2"] = float(np.max(np.abs(other.psi_norm2 - net.psi_norm2) / net.psi_norm2))
    e.pop("status")
    if not fine.get("halved"):  # same step (discrete time, or the expected flow): the seed spread itself
        return e | {"label": f"seed {other_seed} vs seed {seed}"}
    what = f"2 x (seed {seed} vs seed {other_seed}, dt {fine['dt']:g}, batch {fine['batch']})"
    return {k: 2 * v for k, v in e.items()} | {"label": what}


def _reference(reference: Any, lr: float | None) -> tuple[Reference, np.ndarray | None]:
    if isinstance(reference, NetworkRun):
        return Reference(reference.t, reference.values(), f"network h={reference.h}"), reference.steps
    if not isinstance(reference, Mapping) or "t" not in reference:
        raise TypeError('reference must be a dict {"t": times (n,), state name: array (n, K), ...} or a NetworkRun')
    t = np.asarray(reference["t"], dtype=float)
    if t.ndim != 1 or len(t) < 1 or not np.all(np.isfinite(t)) or np.any(np.diff(t) <= 0):
        raise ValueError("reference['t'] must be a 1-D array of increasing finite times")
    data = {}
    for k, v in reference.items():
        if k == "t":
            continue
        a = np.asarray(v, dtype=float)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[0] != len(t):
            raise ValueError(f"reference[{k!r}] must have shape (len(t), K) = ({len(t)}, K); got {np.shape(v)}")
        data[str(k)] = a
    if not data:
        raise ValueError("reference holds no state trajectories besides 't'")
    Ks = {a.shape[1] for a in data.values()}
    if len(Ks) != 1:
        raise ValueError(f"reference arrays disagree on the number of modes: {sorted(Ks)}")
    steps = None
    if lr is not None:
        n = (t - t[0]) / lr
        steps = np.rint(n).astype(np.int64)
        if np.any(np.abs(n - steps) > COARSE_RTOL * np.maximum(1.0, np.abs(n))):
            raise ValueError(f"reference['t'] must lie on the step grid t0 + n * lr (lr = {lr:g}) for the discrete map")
    return Reference(t, data), steps


def compare(
    model: ModelSpec | DynamicalSystem,
    params: Params,
    *,
    widths: Sequence[int] = (16, 64, 256),
    t1: float = 3.0,
    dt: float | None = None,
    lr: float | None = None,
    batch: int = 4096,
    n_records: int | None = None,
    seed: int = 0,
    approximations: Mapping[str, ModelSpec | DynamicalSystem] | None = None,
    reference: Mapping[str, ArrayLike] | NetworkRun | Reference | None = None,
    init: Mapping[str, ArrayLike] | None = None,
    lam: ArrayLike | None = None,
    gradient: str = "auto",
    progress: bool = True,
    max_exact_width: int | None = MAX_EXACT_WIDTH,
    floor_seed: int | None = None,
    floor_widths: Sequence[int] | None = None,
) -> Comparison:
    """Score eigenmode theories against the trained linear network (at each width) or against
    mode trajectories recorded elsewhere.

    Network mode: train ``simulate_network(spec, ...)`` at each width h from an aligned start
    (``init``, default ``default_spectrum(h, alpha_p=alpha_p, seed=seed)``) and run every theory with K = h
    modes from the same initial spectrum: the flow (``integrate``) or, with a learning rate
    ``lr``, the discrete expected-gradient map (``derive(spec).discrete()``, ``iterate``; for
    the exact finite-width flow its map ``ExactModeMap``), which tracks finite-step training
    where the flow would not.

    Reference mode (``reference={"t": t, "s": S, ...}``, arrays time x modes): run the theory
    from the reference's first row (states missing there from ``init``) and score it.

    Parameters
    ----------
    model : a ModelSpec (theories: ``approximations_for(spec)``: the derived system for losses
        without norms, the norm/moment approximations for cosine-like losses), an
        EigenmodeSystem (``derive``'s result, or its ``discrete()``), a ModeSystem or an
        ODESystem (reference mode).
    params : mapping str -> float
        The network's parameters (sigma2, eta, alpha_p, beta, alpha, eps as the spec
        needs; ``lambda`` for data='spectrum') plus any further theory parameters.
    widths : network widths (network mode).
    t1, dt, lr, batch, n_records, seed, gradient : as in ``simulate_network``.
    approximations : {label: ModelSpec or system} to score instead of the default set.
    reference : dict {"t": (n,), state: (n, K), ...} or a NetworkRun recorded earlier.
    init : initial spectra {"p", "s", "tau"} (network mode: each (h,)), or the reference's
        missing initial states.
    lam : the data spectrum (data='spectrum'), as in ``simulate_network``; the theory takes its
        first K entries (mode j of the network has data variance lam[j]).
    progress : a progress bar over the widths (stderr on a terminal only, after a few seconds);
        False: never.
    max_exact_width : the widest h (number of modes) at which the exact finite-width flow
        (``norms="exact"``) is integrated; wider, its row has status "skipped (...)" and no
        numbers. Its cost grows like K, less than the sampled network's (timings:
        ``benchmarks/README.md``); None: no limit. With ``lr`` the exact row is the exact
        flow's gradient-descent map (``derive(spec).discrete()``), at the same cost per step.
    floor_seed : network mode: also train a second network with this seed at each width (same
        initial spectrum; other bases and batches; sampled flows at half the step) and record
        twice its distance to the first as ``floor[h]`` (the network's own floor, a row of
        ``table()``; see ``Comparison``). It costs about two networks per width.
        Discrete-time runs (``lr``) and the expected flow keep their step: the floor is then
        the plain seed-to-seed distance.
    floor_widths : the widths at which to measure that floor (default: every width).

    Returns
    -------
    Comparison (errors per width and theory, ``table()``, ``best()``).

    Raises
    ------
    TypeError / ValueError for a bad model, reference, widths or parameters (the message names
    the argument).
    """
    params, lr, floor_widths = _check_compare_args(model, params, widths, lr, seed, max_exact_width,
                                                   floor_seed, floor_widths)
    explicit = approximations is not None or not isinstance(model, ModelSpec)
    theories = _theory_systems(model, approximations)
    spec = model if isinstance(model, ModelSpec) else getattr(model, "spec", None)
    if lam is None and "lambda" in params:
        lam = params["lambda"]
    theory_params = {k: v for k, v in params.items() if k != "lambda"}
    scoring = _Scoring(theories, theory_params, lr, max_exact_width, explicit)

    if reference is not None:
        return _compare_reference(scoring, reference, init, lam, params, spec)

    if spec is None:
        raise ValueError("comparing against the network needs a model with a spec (a ModelSpec or a derived system); "
                         "for other systems pass reference=")
    train = dict(t1=t1, lr=lr, n_records=n_records, lam=lam, gradient=gradient, progress=False)
    return _compare_network(scoring, spec, params, widths, init, seed, dt, batch, train, progress, floor_seed,
                            floor_widths)


def _compare_network(scoring: _Scoring, spec: ModelSpec, params: dict, widths: Sequence[int], init: Mapping | None,
                     seed: int, dt: float | None, batch: int, train: Mapping[str, Any], progress: bool,
                     floor_seed: int | None, floor_widths: tuple[int, ...] | None) -> Comparison:
    """compare's network mode: at each width, train the network from an aligned start (and the
    floor's second network where asked) and score every theory on it."""
    widths = tuple(widths)
    if not widths or any(isinstance(h, bool) or not isinstance(h, (int, np.integer)) or h < 1 for h in widths):
        raise ValueError(f"widths must be positive ints; got {widths!r}")
    net_names = network_params(spec)
    net_params = {k: params[k] for k in net_names if k in params}
    networks, predictions, errors, floor = {}, {}, {}, {}
    check_progress(progress)
    bar = progress_bar(len(widths), f"compare {spec.label}", progress, unit="width")
    for h in widths:
        start = dict(init) if init is not None else default_spectrum(h, alpha_p=params.get("alpha_p", 1.0), seed=seed)
        net = simulate_network(spec, net_params, h=h, dt=dt, batch=batch, init=start, seed=seed, **train)
        networks[h] = net
        if floor_seed is not None and (floor_widths is None or h in floor_widths):
            floor[h] = _network_floor(spec, net_params, net, h, start, dt, batch, seed, int(floor_seed), train)
        predictions[h], errors[h] = scoring.on_network(net, start, h)
        bar.update(1)
    bar.close()
    return Comparison(widths, networks, predictions, errors, params,
                      {"model": spec.label, "mode": "network", "t1": train["t1"], "dt": dt, "lr": train["lr"],
                       "batch": batch}, floor)


def _check_compare_args(model: Any, params: Any, widths: Sequence[int], lr: Any, seed: int, max_exact_width: Any,
                        floor_seed: Any, floor_widths: Any) -> tuple[dict, float | None, tuple[int, ...] | None]:
    """The params as a dict, ``lr`` as a float (or None) and ``floor_widths`` as a tuple, after
    checking them and the other options."""
    if isinstance(model, str):
        raise TypeError(f"model must be a ModelSpec or a system; got the str {model!r} "
                        f"(write ModelSpec({model!r}, ...))")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict keyed by parameter name; got {type(params).__name__}")
    params = dict(params)
    if lr is not None and (isinstance(lr, bool) or not isinstance(lr, (int, float)) or not np.isfinite(lr) or lr <= 0):
        raise ValueError(f"lr must be a positive finite number; got {lr!r}")
    lr = None if lr is None else float(lr)
    if max_exact_width is not None and (isinstance(max_exact_width, bool) or not isinstance(max_exact_width, (int, np.integer))
                                        or max_exact_width < 1):
        raise ValueError(f"max_exact_width must be a positive int or None; got {max_exact_width!r}")
    if floor_seed is not None and (isinstance(floor_seed, bool) or not isinstance(floor_seed, (int, np.integer))
                                   or floor_seed < 0 or floor_seed == seed):
        raise ValueError(f"floor_seed must be None or an int >= 0 other than seed = {seed}; got {floor_seed!r}")
    if floor_widths is not None:
        floor_widths = tuple(floor_widths)
        if floor_seed is None or not set(floor_widths) <= set(widths):
            raise ValueError(f"floor_widths must be a subset of widths {tuple(widths)!r} and needs floor_seed; got {floor_widths!r}")
    return params, lr, floor_widths


@dataclass(frozen=True)
class _Scoring:
    """Runs every theory with K modes from a start and scores it against recorded modes."""

    theories: Mapping[str, Any]
    theory_params: Mapping[str, float]
    lr: float | None
    max_exact_width: int | None
    explicit: bool

    def run(self, K: int, start_of, ref_data: Mapping[str, np.ndarray], t: np.ndarray, steps: np.ndarray | None,
            lam: np.ndarray | None, norms0: Mapping, psi2: np.ndarray | None) -> tuple[dict, dict]:
        """(predictions, errors) by theory label; ``start_of(system)`` gives a theory's initial
        states; a theory that cannot run at K gets only a status."""
        preds, errs = {}, {}
        for label, theory in self.theories.items():
            skip = _skip_reason(theory, K, self.lr, self.max_exact_width, self.explicit)
            if skip:
                errs[label] = {"status": skip}
                continue
            system = _numeric(theory, K, self.lr)
            start = start_of(system)
            values = _theory_params(system, self.theory_params, lam, norms0, self.lr)
            pred, ok, status = _predict(system, _pack(system, start), t, steps, values)
            preds[label], errs[label] = pred, _errors(ref_data, pred, ok, status, psi2)
        return preds, errs

    def on_network(self, net: NetworkRun, start: Mapping[str, Any], h: int) -> tuple[dict, dict]:
        """(predictions, errors) against the network ``net`` of width ``h`` trained from ``start``."""
        norms0 = {"N_psi": float(np.sqrt(net.a_norm2[0])), "N_phi": float(np.sqrt(net.b_norm2[0]))}

        def start_of(system):
            return {n: (net.init[n] if n in net.init else start[n]) for n in _state_names(system)}

        return self.run(h, start_of, net.values(), net.t, net.steps if self.lr is not None else None,
                        net.lam, norms0, net.psi_norm2)


def _compare_reference(scoring: _Scoring, reference: Any, init: Mapping | None, lam: Any, params: dict,
                       spec: Any) -> Comparison:
    """compare's reference mode: every theory from the reference's first row, scored on it."""
    ref, steps = _reference(reference, scoring.lr)
    K = next(iter(ref.data.values())).shape[1]
    norms0 = {}
    if isinstance(reference, NetworkRun):
        norms0 = {"N_psi": float(np.sqrt(reference.a_norm2[0])), "N_phi": float(np.sqrt(reference.b_norm2[0]))}
        if lam is None and reference.spec.data == "spectrum":
            lam = reference.lam
    lam_K = None if lam is None else np.asarray(lam, dtype=float)[:K]

    def start_of(system):
        start = {}
        for n in _state_names(system):
            if n in ref.data:
                start[n] = ref.data[n][0]
            elif init is not None and n in init:
                start[n] = np.asarray(init[n], dtype=float)
            else:
                raise ValueError(f"the theory's state {n!r} is not in the reference; give its initial values in init={{{n!r}: ...}}")
        return start

    psi2 = reference.psi_norm2 if isinstance(reference, NetworkRun) else None
    preds, errs = scoring.run(K, start_of, ref.data, ref.t, steps, lam_K, norms0, psi2)
    return Comparison((K,), {K: ref}, {K: preds}, {K: errs}, params,
                      {"model": getattr(spec, "label", "") or "reference", "mode": "reference", "lr": scoring.lr})


def _network_floor(spec: ModelSpec, net_params: dict, net: NetworkRun, h: int, start: Mapping, dt: float | None,
                   batch: int, seed: int, floor_seed: int, train: Mapping[str, Any]) -> dict[str, Any]:
    """The network's own floor at width ``h``: a second network with ``floor_seed`` from the
    same start, at half the step for sampled flows, and its distance to ``net``."""
    # half the step: the Euler error halves (the sampling noise falls by sqrt(2); twice the
    # batch as well would cost twice as much and change the estimate little)
    halved = train["lr"] is None and net.gradient == "sampled"
    fine = {"dt": 0.5 * (dt or 0.01) if halved else dt, "batch": batch}
    other = simulate_network(spec, net_params, h=h, init=start, seed=floor_seed, **train, **fine)
    fine["halved"] = halved
    out = _floor(net, other, seed, floor_seed, fine)
    if net.gradient == "sampled":
        step = train["lr"] if train["lr"] is not None else (dt or 0.01)
        runs = ((step, batch), (fine["dt"] if halved else step, batch))
        predicted = _predicted_floor(spec, net_params, net, runs, 2.0 if halved else 1.0)
        if predicted is not None:
            out["predicted"] = predicted
    return out


MAX_EXACT_NOISE_WIDTH = 16
"""The widest network whose floor is predicted with the exact cosine noise (its quadrature
couples every pair of modes; wider, no prediction is made)."""


def _predicted_floor(spec: ModelSpec, params: Mapping[str, float], net: NetworkRun, runs, factor: float) -> dict | None:
    """The floor the SGD noise predicts: two independent seeds from the same start (step and
    batch of each in ``runs``) differ by a Gaussian vector of covariance Sigma_1(t) + Sigma_2(t)
    (``noise_spread`` of ``derive(spec).stochastic(h)``), whose norm is about
    sqrt(tr Sigma_1 + tr Sigma_2); relative to the network's ||x(t)||, maximised over the
    records after the start, times ``factor``. None where the model's noise is not derived or
    the exact quadrature is too wide."""
    from derivations import derive, gradient_noise

    from .._linear_noise import noise_spread

    h = net.h
    try:
        noise = gradient_noise(spec)
        if noise.exact and h > MAX_EXACT_NOISE_WIDTH:
            return None
        system = derive(spec).stochastic(h)
    except (ValueError, TypeError):
        return None
    values = net.values()
    y0 = system.pack(**{k: np.asarray(values[k][0]) for k in noise.state_names})
    theory = {k: params[k] for k in system.param_names if k in params}
    if "lambda" in system.param_names:
        if net.lam is None:
            return None
        theory["lambda"] = np.asarray(net.lam[:h], dtype=float)
    var = 0.0
    for step, B in runs:
        spread = noise_spread(system, y0, net.t, {**theory, "lr": step, "B": B})
        var = var + np.diagonal(spread.covariance, axis1=-2, axis2=-1)
    out = {}
    for name in noise.state_names:
        block = var[1:, system.group_slice(name)]
        ref = np.linalg.norm(values[name][1:], axis=-1)
        out[name] = float(factor * np.max(np.sqrt(block.sum(axis=-1)) / np.maximum(ref, 1e-300)))
    return out
