"""One colour per model, the same in every chart: the matplotlib PNGs (figures.py) and the
Vega-Lite templates of `dvc plots show` (plot_templates.py writes these hex values into them).

Okabe-Ito colours: told apart with the common colour-vision deficiencies too. gbdt is black,
not vermillion: vermillion and weighted's orange were the closest pair (CIEDE2000 22 in normal
vision, 12.5 for a deuteranope); with black the closest pair is 38 and 16 (test_colors.py
measures it). A model not listed here is drawn grey in the PNGs and not at all in the Vega
charts (their colour scales list the models), so a new model needs a line here and
`python -m tools.make_plot_templates`.
"""

from __future__ import annotations

from ..models import STRATEGY_ALIASES

MODEL_COLORS: dict[str, str] = {
    "baseline": "#0072B2",    # blue
    "weighted": "#E69F00",    # orange
    "oversample": "#009E73",  # bluish green
    "logreg": "#CC79A7",      # reddish purple
    "gbdt": "#000000",        # black
}
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
