"""interactive_portrait(system, sliders, params): a phase portrait with parameter sliders (Jupyter).

One slider per chosen parameter; each move recomputes, with the toolkit's own analyses, the
picture (``phase_plane`` + ``plot_phase_plane`` for two or more states, ``plot_flow_1d`` for one
state) and the classified equilibria (``equilibria``), and shows them beside a table of the
equilibria and their kinds. The widgets come from ipywidgets, an optional extra
(``pip install "ncdyn[interactive]"``), imported only when a UI is built. Nothing here keys on a
state's or parameter's name: any system the portrait functions accept works.
"""

from __future__ import annotations

import html
import io
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from derivations import DynamicalSystem

from ._equilibria import EquilibriumSet, equilibria
from ._phase_plane import PhasePlane, phase_plane
from ._plots import in_kernel, plot_flow_1d, plot_phase_plane

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn, not with the package
    from matplotlib.figure import Figure

__all__ = ["interactive_portrait", "InteractivePortrait"]

PLANE_KEYWORDS = ("x", "y", "fixed", "xlim", "ylim", "n_grid", "trajectories", "manifolds", "t1", "backend", "seed")
"""The keywords of ``portrait`` (two or more states) that ``interactive_portrait`` passes on."""

FLOW_KEYWORDS = ("xlim", "ylim")
"""The keywords of ``plot_flow_1d`` (one state) that ``interactive_portrait`` passes on."""

SLIDER_STEPS = 100
"""Default number of slider steps across a range (step = (hi - lo) / SLIDER_STEPS)."""

FIGSIZE = (7.0, 4.5)
DPI = 90


def _widgets() -> Any:
    """The ipywidgets module, or an ImportError that says how to install it."""
    try:
        import ipywidgets
    except ImportError as exc:
        raise ImportError("interactive_portrait needs ipywidgets, an optional extra: "
                          'pip install "ncdyn[interactive]"') from exc
    return ipywidgets


def _real(value: Any, what: str) -> float:
    """A finite real number as a float; TypeError/ValueError naming ``what`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a real number; got {type(value).__name__} {value!r:.60}")
    f = float(value)
    if not np.isfinite(f):
        raise ValueError(f"{what} must be finite; got {value!r}")
    return f


def _check_sliders(system: DynamicalSystem, params: Mapping[str, Any],
                   sliders: Any) -> dict[str, tuple[float, float, float]]:
    """``sliders`` checked: {parameter: (lo, hi, step)} with lo < hi, 0 < step <= hi - lo and
    both ends inside the parameter's domain (the system's own ``check_params``)."""
    if not isinstance(sliders, Mapping):
        raise TypeError("sliders must be a dict {parameter: (lo, hi) or (lo, hi, step)}; "
                        f"got {type(sliders).__name__}")
    if not sliders:
        raise ValueError(f"sliders must name at least one parameter; parameters are {system.param_names}")
    out: dict[str, tuple[float, float, float]] = {}
    for name, spec in sliders.items():
        if not isinstance(name, str) or name not in system.param_names:
            raise ValueError(f"sliders names {name!r}, not a parameter of this system; "
                             f"parameters are {system.param_names}")
        if isinstance(spec, (str, bytes)) or not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise ValueError(f"sliders[{name!r}] must be (lo, hi) or (lo, hi, step); got {spec!r:.60}")
        lo, hi = _real(spec[0], f"sliders[{name!r}] lo"), _real(spec[1], f"sliders[{name!r}] hi")
        if not lo < hi:
            raise ValueError(f"sliders[{name!r}] = {tuple(spec)!r}: need lo < hi")
        step = (hi - lo) / SLIDER_STEPS if len(spec) == 2 else _real(spec[2], f"sliders[{name!r}] step")
        if not 0 < step <= hi - lo:
            raise ValueError(f"sliders[{name!r}] step must satisfy 0 < step <= hi - lo = {hi - lo:g}; got {step!r}")
        for end in (lo, hi):
            try:
                system.check_params({**{n: params.get(n, 0.0) for n in system.param_names}, name: end})
            except ValueError as exc:
                if f"params[{name!r}]" not in str(exc):
                    continue  # another parameter's fault: reported by the full check of params
                raise ValueError(f"sliders[{name!r}] = ({lo:g}, {hi:g}) leaves the parameter's domain: {exc}") \
                    from None
        out[name] = (lo, hi, step)
    return out


def _check_keywords(one_state: bool, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    allowed = FLOW_KEYWORDS if one_state else PLANE_KEYWORDS
    for k in kwargs:
        if k not in allowed:
            drawn = ("a one-state system is drawn by plot_flow_1d" if one_state
                     else "a system with two or more states is drawn by portrait")
            if k == "ax":
                drawn = "the widget draws on its own figure"
            raise TypeError(f"interactive_portrait got the keyword {k!r}; {drawn}, which takes {', '.join(allowed)}")
    return dict(kwargs)


@dataclass
class _State:
    """What one recomputation gives: parameters, equilibria, plane, and the figure and its PNG
    (None until drawn)."""

    params: dict[str, Any]
    equilibria: EquilibriumSet
    plane: PhasePlane | None
    figure: Any = None
    png: bytes | None = None


class InteractivePortrait:
    """A phase portrait with parameter sliders, and its current state for scripted use.

    Built by ``interactive_portrait``. Displaying it in Jupyter shows ``widget``: the sliders,
    the figure and a table of the equilibria with their kinds. Moving a slider (or calling
    ``update``) recomputes the picture and the equilibria at the new parameters.

    Attributes
    ----------
    widget : the ipywidgets container (VBox) of sliders, image and summary.
    sliders : {parameter: ipywidgets.FloatSlider}.
    image : the ipywidgets.Image the figure is drawn into (PNG; rendered inside a Jupyter kernel
        or once the object has been displayed, so that scripted use pays for no rendering).
    summary : the ipywidgets.HTML with the parameter values and the table of equilibria.
    figure : the matplotlib Figure at the current parameters (a bare Figure that no pyplot
        registry holds; outside a displayed widget drawn only when asked for).
    error : None, or the message of the last recomputation that failed after a slider moved
        (the figure and equilibria then stay those of the last good parameters).
    """

    def __init__(self, system: DynamicalSystem, params: Mapping[str, float],
                 ranges: Mapping[str, tuple[float, float, float]], kwargs: Mapping[str, object]) -> None:
        w = _widgets()
        self._system = system
        self._one_state = len(system.state_names) == 1
        self._kwargs = dict(kwargs)
        self._fixed = {k: v for k, v in params.items() if k not in ranges}
        self._holding = False
        self._live = in_kernel()
        self.error: str | None = None
        self.sliders = {}
        for name, (lo, hi, step) in ranges.items():
            slider = w.FloatSlider(value=float(params[name]), min=lo, max=hi, step=step, description=name,
                                   continuous_update=False, readout_format=".4g",
                                   style={"description_width": "initial"}, layout=w.Layout(width="420px"))
            slider.observe(self._on_slider, names="value")
            self.sliders[name] = slider
        self.image = w.Image(format="png")
        self.summary = w.HTML()
        self.widget = w.VBox([w.VBox(list(self.sliders.values())), self.image, self.summary])
        self._state = self._compute(self._slider_params(), draw=True)  # the first picture: bad input raises here
        self._show()

    # -- the current state ---------------------------------------------------------------------
    @property
    def params(self) -> dict[str, float]:
        """The parameter values of the current picture and equilibria (the sliders' and the
        fixed ones), keyed by name in the system's order."""
        return dict(self._state.params)

    @property
    def equilibria(self) -> EquilibriumSet:
        """The classified equilibria of the system at ``params`` (``equilibria``)."""
        return self._state.equilibria

    @property
    def plane(self) -> PhasePlane | None:
        """The ``PhasePlane`` at ``params`` (None for a one-state system, drawn by plot_flow_1d)."""
        return self._state.plane

    @property
    def figure(self) -> Figure:
        """The matplotlib Figure at ``params``, drawn on first use outside a displayed widget."""
        st = self._state
        if st.figure is None:
            st.figure = self._draw(st.params, st.plane)
        return st.figure

    @property
    def png(self) -> bytes:
        """The figure as PNG bytes (what the widget shows), rendered on first use."""
        st = self._state
        if st.png is None:
            buf = io.BytesIO()
            self.figure.savefig(buf, format="png", dpi=DPI)
            st.png = buf.getvalue()
        return st.png

    # -- changes -------------------------------------------------------------------------------
    def update(self, **values: float) -> InteractivePortrait:
        """Move sliders to ``values`` ({parameter: value}) and recompute once.

        Parameters
        ----------
        **values : new values of slider parameters, each within its slider's range.

        Returns
        -------
        self, recomputed.

        Raises
        ------
        TypeError
            A value that is not a real number.
        ValueError
            A name that has no slider (listing those that have), a value outside its slider's
            range; and any error of the recomputation itself (then the sliders move back and
            the previous state is kept).
        """
        new: dict[str, float] = {}
        for name, v in values.items():
            if name not in self.sliders:
                raise ValueError(f"update names {name!r}, which has no slider; sliders are {tuple(self.sliders)}")
            f = _real(v, f"update {name}")
            s = self.sliders[name]
            if not s.min <= f <= s.max:
                raise ValueError(f"update {name}={f:g} is outside its slider's range [{s.min:g}, {s.max:g}]")
            new[name] = f
        old = {name: self.sliders[name].value for name in new}
        self._set(new)
        try:
            self._refresh(raise_errors=True)
        except Exception:
            self._set(old)
            raise
        return self

    def _set(self, values: Mapping[str, float]) -> None:
        self._holding = True
        try:
            for name, f in values.items():
                self.sliders[name].value = f
        finally:
            self._holding = False

    def _slider_params(self) -> dict[str, Any]:
        """The parameters the sliders now say, in the system's order."""
        values = {**self._fixed, **{n: float(s.value) for n, s in self.sliders.items()}}
        return {n: values[n] for n in self._system.param_names}

    def _on_slider(self, change: Mapping[str, Any]) -> None:
        if not self._holding:
            self._refresh(raise_errors=False)

    def _refresh(self, raise_errors: bool) -> None:
        prm = self._slider_params()
        try:
            self._state = self._compute(prm, draw=self._live)
        except Exception as exc:  # a UI callback must not die: show the message, keep the last picture
            self.error = f"{type(exc).__name__}: {exc}"
            self._show()
            if raise_errors:
                raise
            return
        self.error = None
        self._show()

    def _compute(self, prm: dict[str, Any], draw: bool) -> _State:
        """Equilibria and (two or more states) the phase plane at ``prm``; the figure too when
        ``draw`` (else drawn when first asked for)."""
        found = equilibria(self._system, prm)
        plane = None if self._one_state else phase_plane(self._system, prm, **self._kwargs)
        return _State(dict(prm), found, plane, self._draw(prm, plane) if draw else None)

    def _draw(self, prm: Mapping[str, Any], plane: PhasePlane | None) -> Any:
        from matplotlib.figure import Figure

        fig = Figure(figsize=FIGSIZE, layout="constrained")
        ax = fig.add_subplot()
        if plane is None:
            plot_flow_1d(self._system, prm, ax=ax, **self._kwargs)
        else:
            plot_phase_plane(plane, ax=ax)
        return fig

    def _show(self) -> None:
        if self._live:
            self.image.value = self.png
        self.summary.value = self.summary_html()

    # -- display -------------------------------------------------------------------------------
    def summary_html(self) -> str:
        """The summary as HTML: parameter values, then one row per equilibrium (state values,
        kind, stable), curves of equilibria, and whether the enumeration is complete.

        Returns
        -------
        str
            An HTML fragment (what ``summary`` shows).
        """
        eqs, plane = self._state.equilibria, self._state.plane
        prm = ", ".join(f"{html.escape(k)} = {float(v):.4g}" for k, v in self.params.items())
        names = self._system.state_names
        rows = "".join(
            "<tr>" + "".join(f"<td>{e.point[n]:.6g}</td>" for n in names)
            + f"<td>{html.escape(e.kind)}</td><td>{e.stable}</td></tr>" for e in eqs)
        head = "".join(f"<th>{html.escape(n)}</th>" for n in names) + "<th>kind</th><th>stable</th>"
        parts = [f"<b>{html.escape(self._system.name or 'system')}</b> at {prm}",
                 f"<table><tr>{head}</tr>{rows}</table>" if len(eqs) else "<p>no equilibria in the state domain</p>"]
        parts += [f"<p>curve of equilibria: {html.escape(repr(c))}</p>" for c in eqs.curves]
        if plane is not None and plane.fixed:
            parts.append(f"<p>{len(plane.equilibria)} of them on the plotted slice</p>" if plane.invariant else
                         f"<p>{len(plane.equilibria)} zero(s) of the frozen field on the plotted slice (the other states "
                         "held at numbers: not equilibria of the whole system)</p>")
        parts.append(f"<p><small>{'complete' if eqs.complete else 'possibly incomplete'}: {html.escape(eqs.method)}"
                     f"</small></p>")
        if self.error is not None:
            moved = ", ".join(f"{n} = {float(sl.value):.4g}" for n, sl in self.sliders.items())
            parts.append(f"<p style='color:#b00'>not recomputed at {html.escape(moved)}: {html.escape(self.error)}</p>")
        return "\n".join(parts)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        if not self._live:
            self._live = True
            self.image.value = self.png
        return self.widget._repr_mimebundle_(**kwargs)

    def __repr__(self) -> str:
        eqs = self.equilibria
        kinds = ", ".join(e.kind for e in eqs) or "none"
        vals = ", ".join(f"{k}={float(v):.4g}" for k, v in self.params.items())
        return f"InteractivePortrait({self._system.name or 'system'}; {vals}; equilibria: {kinds})"


def interactive_portrait(
    system: DynamicalSystem,
    sliders: Mapping[str, tuple[float, float] | tuple[float, float, float]],
    params: Mapping[str, float],
    **portrait_kwargs: object,
) -> InteractivePortrait:
    """A phase portrait with a slider per parameter that recomputes equilibria as it moves.

    Each slider change recomputes, at the new parameters p, the classified equilibria
    f(x*; p) = 0 (``equilibria``: exact for rational systems, with their kinds) and the picture:
    for two or more states ``plot_phase_plane(phase_plane(system, p, **portrait_kwargs))`` (what
    ``portrait`` draws), for one state ``plot_flow_1d(system, p, **portrait_kwargs)``. A table
    lists the equilibria with their kinds and stability. Works for any system these functions
    accept; needs ipywidgets (``pip install "ncdyn[interactive]"``), but no running Jupyter
    frontend: ``update`` drives it from code.

    Parameters
    ----------
    system : derivations.DynamicalSystem, e.g. ``derive(spec)`` or ``derive(spec).reduce()``.
    sliders : {parameter: (lo, hi)} or {parameter: (lo, hi, step)}; one FloatSlider each, with
        lo < hi inside the parameter's domain (``system.param_domain``) and step (default
        (hi - lo)/100) in (0, hi - lo]. A range, not a sweep: the slider moves within it.
    params : {parameter: value}; every parameter without a slider must be given. A slider's
        parameter starts at its value here, or at the middle of its range when omitted.
    **portrait_kwargs : for two or more states, those of ``portrait`` (x, y, fixed, xlim, ylim,
        n_grid, trajectories, manifolds, t1, backend, seed); for one state, those of
        ``plot_flow_1d`` (xlim, ylim). Small ``n_grid`` and few ``trajectories`` keep the sliders responsive.

    Returns
    -------
    InteractivePortrait : displays as the widget in Jupyter; ``.params`` (current values),
    ``.equilibria`` (the current EquilibriumSet), ``.plane`` (the PhasePlane, or None for one
    state), ``.figure``, ``.update(name=value, ...)`` (moves sliders, recomputes),
    ``.widget`` (the ipywidgets container).

    Raises
    ------
    ImportError
        ipywidgets is not installed (the message gives the pip command).
    TypeError
        ``system`` is no DynamicalSystem, ``params`` or ``sliders`` no mapping, a range
        end that is not a real number, a keyword the drawing function does not take; and
        ``portrait``'s or ``plot_flow_1d``'s own TypeErrors.
    ValueError
        A slider naming no parameter (listing them), no sliders, lo >= hi, a bad step, a range
        outside the parameter's domain, a start value outside its slider's range, missing or
        unknown params; and every error ``portrait`` (``phase_plane``) or ``plot_flow_1d``
        raises for this system and these keywords, unchanged.
    """
    if not isinstance(system, DynamicalSystem):
        raise TypeError(f"system must be a derivations.DynamicalSystem; got {type(system).__name__}")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a dict keyed by parameter name; got {type(params).__name__}")
    _widgets()
    ranges = _check_sliders(system, params, sliders)
    start = dict(params)
    for name, (lo, hi, _) in ranges.items():
        if name in start:
            v = _real(start[name], f"params[{name!r}]")
            if not lo <= v <= hi:
                raise ValueError(f"params[{name!r}] = {v:g} is outside its slider's range sliders[{name!r}] = "
                                 f"({lo:g}, {hi:g})")
        else:
            start[name] = 0.5 * (lo + hi)
    start = dict(system.check_params(start))
    kwargs = _check_keywords(len(system.state_names) == 1, portrait_kwargs)
    return InteractivePortrait(system, start, ranges, kwargs)
