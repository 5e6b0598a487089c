"""The checkout's entry points: `python -m src.stages.<stage>` (what dvc.yaml runs) and the
`python -m src.<command>` aliases of the `fraud` command.

The library is the package `fraud` (src/fraud/, installed from the checkout by
requirements.txt). Every process started through this package imports it from THIS
checkout, not from wherever it was installed: DVC runs queued and `--temp` experiments in a
copy of the repository, and their stages must run the code DVC hashed there.
"""

import sys
from pathlib import Path

_LIBRARY_ROOT = str(Path(__file__).resolve().parent)
if _LIBRARY_ROOT not in sys.path[:1]:
    sys.path.insert(0, _LIBRARY_ROOT)
