"""roots_batch against closed-form roots, including multiple roots (which a companion matrix of
the whole numerator splits by ~sqrt(machine epsilon))."""

import numpy as np

from derivations import ModelSpec, ODESystem, derive
from dynamics import roots_batch


def test_double_root_is_exact_and_not_stable():
    # x' = (x - a)^2 (x + b), a, b > 0: x = a is a double root (semi-stable: f >= 0 on both
    # sides), x = -b is unstable (f' = (a + b)^2 > 0). No point may report a stable equilibrium.
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.01, 2.0, 4000), rng.uniform(0.01, 2.0, 4000)
    system = ODESystem.from_equations({"x": "(x - a)**2*(x + b)"}, params=("a", "b"))
    r = roots_batch(system, {"a": a, "b": b}, progress=False)
    assert np.all(r.n_real == 3) and np.all(r.n_stable == 0)
    found = np.sort(np.where(r.real, r.roots.real, np.nan), axis=1)
    expect = np.sort(np.stack([a, a, -b], axis=1), axis=1)
    np.testing.assert_allclose(found, expect, rtol=0, atol=1e-12)


def test_euclidean_cubic_roots_closed_form():
    # On its manifold: p' = -p (eta - p + c p^2), roots 0 and (1 +- sqrt(1 - 4 c eta)) / (2 c).
    system = derive(ModelSpec("euclidean", "simsiam"))
    eta = np.linspace(0.0, 0.3, 301)
    r = roots_batch(system, {"sigma2": 0.2, "eta": eta, "alpha_p": 1.0}, progress=False)
    c = 1.2
    disc = 1 - 4 * c * eta
    for i, e in enumerate(eta):
        expect = [0.0] + ([] if disc[i] < 0 else [(1 - np.sqrt(disc[i])) / (2 * c), (1 + np.sqrt(disc[i])) / (2 * c)])
        found = np.sort(r.roots[i].real[r.real[i]])
        np.testing.assert_allclose(found, np.sort(expect), rtol=0, atol=1e-7 if abs(disc[i]) < 1e-12 else 1e-12)
        # stable: the larger root while disc > 0; p = 0 while eta > 0
        assert r.noncollapsed_stable[i] == (disc[i] > 0)
        assert r.collapsed_stable[i] == (e > 0)


def test_many_points_over_threads_match_the_closed_form_and_any_split():
    # Enough points for several chunks on several threads: the same roots and labels as the
    # closed form, and bit for bit those of the same points in other splits.
    from dynamics._roots import MIN_THREAD_CHUNK

    n = 3 * MIN_THREAD_CHUNK + 7
    rng = np.random.default_rng(1)
    a, b = rng.uniform(0.01, 2.0, n), rng.uniform(0.01, 2.0, n)
    system = ODESystem.from_equations({"x": "(x - a)**2*(x + b)"}, params=("a", "b"))
    r = roots_batch(system, {"a": a, "b": b}, progress=False)
    assert np.all(r.n_real == 3) and np.all(r.n_stable == 0)
    assert np.all(np.sort(r.multiplicity, axis=1) == [1, 2, 2])
    found = np.sort(np.where(r.real, r.roots.real, np.nan), axis=1)
    np.testing.assert_allclose(found, np.sort(np.stack([a, a, -b], axis=1), axis=1), rtol=0, atol=1e-12)
    cut = [0, 5, MIN_THREAD_CHUNK + 1, n]
    parts = [roots_batch(system, {"a": a[i:j], "b": b[i:j]}, progress=False) for i, j in zip(cut, cut[1:])]
    for field in ("roots", "real", "slope", "stable", "multiplicity", "n_real", "n_stable"):
        assert np.array_equal(np.concatenate([getattr(p, field) for p in parts]), getattr(r, field))
