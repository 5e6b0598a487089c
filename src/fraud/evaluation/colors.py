"""One colour per model, the same in every chart: the matplotlib PNGs (figures.py) and the
Vega-Lite templates of `dvc plots show` (plot_templates.py writes these hex values into them).

Okabe-Ito colours: told apart with the common colour-vision deficiencies too (test_colors.py
measures the closest pair). Each model's colour is its kind's (src/fraud/kinds); the Vega
charts list the models in their colour scales, so a new kind needs
`python -m tools.make_plot_templates`.
"""

from __future__ import annotations

from ..core.models import STRATEGY_ALIASES
from ..kinds.registry import all_kinds

MODEL_COLORS: dict[str, str] = {kind.name: kind.color for kind in all_kinds()}
# The zero-vs-careful output bias comparison of init_bias: no model, so no model colour
# (greys: black is gbdt's).
BIAS_COLORS: dict[str, str] = {"zero bias": "#999999", "careful bias": "#444444"}
# The PSI bands of the Drift chart (monitoring/drift.py's names): calm to alarming.
BAND_COLORS: dict[str, str] = {"stable": "#56B4E9", "moderate shift": "#E69F00",
                               "major shift": "#D55E00"}
UNKNOWN = "#7f7f7f"


def model_color(name: str) -> str:
    """The model's colour (grey for a name not in MODEL_COLORS)."""
    return MODEL_COLORS.get(STRATEGY_ALIASES.get(name, name), UNKNOWN)
