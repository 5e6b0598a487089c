#!/usr/bin/env python3
"""Write the Vega-Lite templates of `dvc plots show` into .dvc/plots/ (where DVC looks
them up by name). Run from the repository root after changing src/fraud/evaluation/plot_templates.py
or src/fraud/evaluation/colors.py:

    python -m tools.make_plot_templates
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_DIR = REPO_ROOT / ".dvc" / "plots"


def main() -> None:
    sys.path.insert(0, str(REPO_ROOT))
    from fraud.evaluation.plot_templates import write_templates

    for path in write_templates(TEMPLATE_DIR):
        print(path.relative_to(REPO_ROOT))


if __name__ == "__main__":
    main()
