"""pytest setup for python/tests: make `dove`, `dove_fixtures` and the tests' support module dove_testutil
importable however pytest is started."""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))
sys.path.insert(0, os.path.abspath(os.path.dirname(__file__)))
