"""dove_fixtures lists its areas by hand (no discovery by name): a fixture module left out of AREAS would
silently never be written, and the tests that read it would fail far from the cause."""
import os

import dove_fixtures
from dove_fixtures.__main__ import AREAS


def test_every_fixture_module_is_listed_once() -> None:
    folder = os.path.dirname(dove_fixtures.__file__)
    modules = sorted(f[:-3] for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("__"))
    assert sorted(AREAS) == modules
    assert len(set(AREAS)) == len(AREAS)
