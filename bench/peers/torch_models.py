"""Loading an export in Python, shared by the python peers and the FLOP counter: dove.export's own loader."""
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if os.path.join(ROOT, "python") not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, "python"))

from dove.export import load_export  # noqa: E402,F401
