import itertools
import os
import tempfile

import pytest

# Keep the suite's derivations out of the user's cache (tests that need a specific cache
# directory set their own with monkeypatch).
os.environ.setdefault("NCDYN_CACHE_DIR", tempfile.mkdtemp(prefix="ncdyn-test-cache-"))


def _persistent_compilation_cache() -> str | None:
    """Let this test process (each xdist worker) reuse compiled solvers across processes and
    runs: JAX's persistent compilation cache, in a per-user directory under the temporary
    directory (NCDYN_TEST_JAX_CACHE: another directory, or "off").

    JAX refuses to cache a program with host callbacks, and equinox's run-time checks inside
    diffrax (dt0 and saveat.ts checks) are host callbacks unless EQX_ON_ERROR=nan. Those checks
    guard conditions integrate validates on the host before it calls the solver (t1 > t0,
    output times increasing and inside the span), and every solve runs with throw=False, so on
    the inputs that reach them they never fire and "nan" changes no result; no test expects
    equinox to raise. The variable is set only while equinox is first imported, so processes
    the tests start (examples, notebooks) keep the default; a user's own EQX_ON_ERROR wins, and
    without "nan" the cache stays off. Returns the directory, or None when off."""
    where = os.environ.get("NCDYN_TEST_JAX_CACHE", "")
    if where == "off":
        return None
    chosen = os.environ.get("EQX_ON_ERROR")
    if chosen is None:
        os.environ["EQX_ON_ERROR"] = "nan"
    try:
        import equinox  # noqa: F401  (reads EQX_ON_ERROR once, on first import)
        from equinox import _config
    finally:
        if chosen is None:
            del os.environ["EQX_ON_ERROR"]
    if _config.EQX_ON_ERROR != "nan":  # the user's choice, or equinox was imported before us
        return None
    if not where:
        try:
            user = __import__("getpass").getuser()
        except (KeyError, OSError):
            user = str(os.getuid())
        where = os.path.join(tempfile.gettempdir(), f"ncdyn-test-jax-cache-{user}")
    import jax

    jax.config.update("jax_compilation_cache_dir", where)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    return where


JAX_CACHE = _persistent_compilation_cache()

from derivations import ModelSpec  # noqa: E402

ALL_SPECS = sorted(
    {
        ModelSpec(loss, target, norms, moments)
        for loss, target, norms, moments in itertools.product(
            ("euclidean", "cosine"), ("simsiam", "ema"), ("frozen", "self-consistent"), ("exact", "leading")
        )
    },
    key=lambda s: s.label,
)
"""The ten classic variants (Euclidean/cosine x SimSiam/EMA x norms x moments; the Euclidean loss
ignores norms and moments) with a learned predictor. The wider model space is covered by
tests/test_model_space.py."""


def pytest_report_header(config):
    return f"jax persistent compilation cache: {JAX_CACHE or 'off'}"


@pytest.fixture(params=ALL_SPECS, ids=lambda s: s.label.replace(" ", "_"))
def spec(request):
    return request.param
