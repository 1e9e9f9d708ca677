import itertools
import os
import tempfile

import pytest

# Keep the suite's derivations out of the user's cache (tests that need a specific cache
# directory set their own with monkeypatch).
os.environ.setdefault("NCDYN_CACHE_DIR", tempfile.mkdtemp(prefix="ncdyn-test-cache-"))

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


@pytest.fixture(params=ALL_SPECS, ids=lambda s: s.label.replace(" ", "_"))
def spec(request):
    return request.param
