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
            *ModelSpec.allowed().values()
        )
    },
    key=lambda s: s.label,
)
"""Every distinct model variant (the Euclidean loss ignores norms and moments): 10 in all."""


@pytest.fixture(params=ALL_SPECS, ids=lambda s: s.label.replace(" ", "_"))
def spec(request):
    return request.param
