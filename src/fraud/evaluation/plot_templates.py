"""The Vega-Lite templates of `dvc plots show`: one colour per model in every chart.

DVC's own templates colour by revision, so in a normal run every model had the same colour
(issue 11). These colour by model, the name read from the file each row comes from (DVC
adds `filename` to every row; `plots/roc/weighted.csv` is `weighted`), with the hex values
of colors.py, so a model has the same colour here as in the matplotlib PNGs. A revision
(`dvc plots diff`) gets its own dash; with one revision there is no dash and no revision
legend (issue 31). Series of one file that mean different things (loss
and val_loss, precision and recall) go to side-by-side panels, named in their headers.

DVC looks templates up by name in `.dvc/plots/` (works from any folder of the repository,
unlike a path) and fills the `<DVC_METRIC_...>` anchors. These use no optional anchor:
with one, DVC rewrites the rows and drops `filename`. `python -m tools.make_plot_templates`
writes the files; a test checks they are up to date.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.models import STRATEGIES
from ..monitoring.drift import MAJOR, MAJOR_PSI, MODERATE, MODERATE_PSI, STABLE
from .colors import BAND_COLORS, BIAS_COLORS, MODEL_COLORS

Spec = dict[str, Any]

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
WIDTH, HEIGHT = 460, 320          # one chart
PANEL_WIDTH, PANEL_HEIGHT = 300, 240  # one panel of a row of panels
RELIABILITY_SIDE = 380                # square: the diagonal at 45°
# The calibration CSV's column of rows per bin (calibration.reliability writes it).
RELIABILITY_ROWS = "rows"
# File name without folders or extension: "plots/roc/gbdt.csv" and "gbdt.csv" give "gbdt".
MODEL_FROM_FILENAME = "replace(datum.filename, regexp('^.*[\\\\\\\\/]|[.][^.]*$', 'g'), '')"
# Panel headers for the columns DVC passes as `field`.
FIELD_LABELS = {
    "loss": "training", "val_loss": "validation",
    "zero_bias_loss": "training", "careful_bias_loss": "training",
    "zero_bias_val_loss": "validation", "careful_bias_val_loss": "validation",
    "val_prc": "PR-AUC (Keras, 200 bins)", "val_ap": "average precision (exact)",
    "val_precision": "precision at 0.5", "val_recall": "recall at 0.5",
    "val_auc": "ROC-AUC (Keras, 200 bins)", "precision": "precision", "recall": "recall",
    "share_frauds": "over the test frauds", "share_all": "over test rows (a seeded sample)",
}
X, Y = "<DVC_METRIC_X>", "<DVC_METRIC_Y>"
ZOOM: Spec = {"name": "zoom", "select": "interval", "bind": "scales"}


def _label_expression(labels: dict[str, str], field: str = "datum.field") -> str:
    """A Vega expression mapping `field`'s value through `labels` (unknown: itself)."""
    expression = field
    for value, label in reversed(list(labels.items())):
        expression = f"{field} === '{value}' ? '{label}' : ({expression})"
    return expression


def _color(field: str, colors: dict[str, str], title: str) -> Spec:
    return {"field": field, "type": "nominal", "title": title,
            "scale": {"domain": list(colors), "range": list(colors.values())},
            "legend": {"symbolType": "stroke", "symbolStrokeWidth": 3}}


# DVC names the revision of every row in `rev` ("workspace" in `dvc plots show`) and has no
# anchor that drops it for a single revision, so a dash by `rev` always had a legend entry
# "Revision: workspace". The revisions are counted in the data instead (`revisions`) and the
# dash drawn only when there are several. The legend's title is a space: Vega 5.20 fails to
# render a legend with no entries and no title, and a title would show with no entries.
REVISION_DASH: Spec = {"field": "rev", "type": "nominal", "title": " ",
                       "legend": {"symbolType": "stroke", "symbolStrokeWidth": 2,
                                  "symbolStrokeColor": "#444444",
                                  "labelExpr": "'revision ' + datum.label"}}


def _by_revision(layer: Spec, dash: Spec = REVISION_DASH) -> list[Spec]:
    """`layer` twice: for one revision (`dvc plots show`) solid and with no revision legend;
    for several (`dvc plots diff`) dashed by revision. Each draws only its own case's rows.
    Selection params stay with the first: a name may be declared once."""
    own = layer.get("transform", [])
    plain = {**layer, "transform": [{"filter": "datum.revisions <= 1"}, *own]}
    dashed = {key: value for key, value in layer.items() if key != "params"}
    dashed["transform"] = [{"filter": "datum.revisions > 1"}, *own]
    dashed["encoding"] = {**layer["encoding"], "strokeDash": dash}
    return [plain, dashed]


def _axis(anchor: str, scale: Spec | None = None) -> Spec:
    field = X if anchor == "x" else Y
    result: Spec = {"field": field, "type": "quantitative",
                    "title": f"<DVC_METRIC_{anchor.upper()}_LABEL>"}
    if scale:
        result["scale"] = scale
    return result


def _base(transform: list[Spec]) -> Spec:
    """What every template shares: data, title, the row order, model names."""
    return {
        "$schema": SCHEMA,
        "data": {"values": "<DVC_METRIC_DATA>"},
        "title": {"text": "<DVC_METRIC_TITLE>", "anchor": "start"},
        "transform": [
            # Curves are drawn in file order (a ROC step is vertical: same x, rising y);
            # panels come in the order dvc.yaml lists the columns.
            {"window": [{"op": "row_number", "as": "seen"}]},
            {"window": [{"op": "row_number", "as": "row"}],
             "groupby": ["rev", "filename", "field"]},
            {"joinaggregate": [{"op": "distinct", "field": "rev", "as": "revisions"}]},
            *transform,
        ],
    }


def curve_template(models: dict[str, str], x_scale: Spec | None = None,
                   y_scale: Spec | None = None, x_positive: bool = False) -> Spec:
    """One chart, one line per model (and revision); zoom and pan with the mouse.

    `x_positive` leaves out x <= 0, which a log x axis cannot place (ROC's fpr = 0).
    """
    transform: list[Spec] = [{"calculate": MODEL_FROM_FILENAME, "as": "model"}]
    if x_positive:
        transform.append({"filter": f"datum['{X}'] > 0"})
    spec = _base(transform)
    spec.update({
        "width": WIDTH, "height": HEIGHT,
        "layer": _by_revision({
            "params": [ZOOM],
            "mark": {"type": "line", "strokeWidth": 2, "tooltip": {"content": "data"}},
            "encoding": {
                "x": _axis("x", x_scale), "y": _axis("y", y_scale),
                "color": _color("model", models, "Model"),
                "order": {"field": "row", "type": "quantitative"},
            },
        }),
    })
    return spec


def panels_template(colors: dict[str, str], color_title: str, y_scale: Spec | None = None,
                    shared_y: bool = True, by_bias: bool = False) -> Spec:
    """A row of panels, one per column DVC read (`field`): loss | val_loss, or precision |
    recall | PR-AUC. Colour is the model (or, for init_bias' single file, the bias)."""
    color_of = ("(indexof(datum.field, 'zero_') === 0 ? 'zero bias' : 'careful bias')"
                if by_bias else MODEL_FROM_FILENAME)
    spec = _base([
        {"calculate": color_of, "as": "color_key"},
        {"calculate": _label_expression(FIELD_LABELS), "as": "panel"},
    ])
    spec.update({
        "facet": {"column": {"field": "panel", "type": "nominal", "title": None,
                             "sort": {"field": "seen", "op": "min"},
                             "header": {"labelFontSize": 13, "labelFontWeight": "bold"}}},
        "spec": {
            "width": PANEL_WIDTH, "height": PANEL_HEIGHT,
            "layer": _by_revision({
                "mark": {"type": "line", "strokeWidth": 2, "tooltip": {"content": "data"}},
                "encoding": {
                    "x": _axis("x"), "y": _axis("y", y_scale),
                    "color": _color("color_key", colors, color_title),
                    "order": {"field": "row", "type": "quantitative"},
                },
            }),
        },
        "resolve": {"scale": {"y": "shared" if shared_y else "independent"}},
    })
    return spec


def reliability_template(models: dict[str, str]) -> Spec:
    """Reliability diagram: each bin's mean predicted probability (DVC's x) against its
    observed fraud rate (y), one colour per model, on log axes of the same decades (most rows
    sit near 0: the first bin holds ~99.9 % of them), so the dashed diagonal a calibrated
    model follows is at 45°. Dot area is the bin's row count (the calibration CSV's `rows`):
    the high-probability bins hold 1-10 rows, and their rates jump between 0 and 1 by
    chance. A bin with no fraud (rate 0: no place on a log axis) is an open triangle on the
    bottom edge, not a line plunging to 0 (issue 31)."""
    spec = _base([
        {"calculate": MODEL_FROM_FILENAME, "as": "model"},
        {"calculate": f"toNumber(datum['{X}'])", "as": "predicted"},
        {"calculate": f"toNumber(datum['{Y}'])", "as": "observed"},
        {"calculate": f"toNumber(datum['{RELIABILITY_ROWS}'])", "as": "bin_rows"},
        {"filter": "datum.predicted > 0"},
    ])
    log = {"type": "log"}
    x = {"field": "predicted", "type": "quantitative", "title": "<DVC_METRIC_X_LABEL>",
         "scale": log}
    y = {"field": "observed", "type": "quantitative", "title": "<DVC_METRIC_Y_LABEL>",
         "scale": log}
    color = _color("model", models, "Model")
    size = {"field": "bin_rows", "type": "quantitative", "title": "Rows in the bin",
            "scale": {"type": "log", "range": [10, 400]}}
    with_fraud = [{"filter": "datum.observed > 0"}]
    # From the lowest point either axis needs to (1, 1): it sets both axes' lower end.
    diagonal = {
        "transform": [
            {"calculate": "datum.observed > 0 ? datum.observed : null", "as": "positive"},
            {"aggregate": [{"op": "min", "field": "predicted", "as": "low_x"},
                           {"op": "min", "field": "positive", "as": "low_y"}]},
            {"calculate": "isValid(datum.low_y) ? min(datum.low_x, datum.low_y) : datum.low_x",
             "as": "low"}],
        "mark": {"type": "rule", "strokeDash": [6, 4], "strokeWidth": 1.5, "color": "#666666"},
        "encoding": {"x": {**x, "field": "low"}, "y": {**y, "field": "low"},
                     "x2": {"datum": 1}, "y2": {"datum": 1}},
    }
    spec.update({
        "width": RELIABILITY_SIDE, "height": RELIABILITY_SIDE,
        "title": {"text": "<DVC_METRIC_TITLE>", "anchor": "start",
                  "subtitle": "On the dashed diagonal: calibrated. Dot area: rows in the bin. "
                              "Open triangle on the bottom edge: a bin with no fraud."},
        "layer": [
            *_by_revision({"transform": with_fraud, "params": [ZOOM],
                           "mark": {"type": "line", "strokeWidth": 1.5, "opacity": 0.8},
                           "encoding": {"x": x, "y": y, "color": color,
                                        "order": {"field": "row", "type": "quantitative"}}}),
            {"transform": with_fraud,
             "mark": {"type": "circle", "opacity": 0.85, "tooltip": {"content": "data"}},
             "encoding": {"x": x, "y": y, "color": color, "size": size}},
            # Fixed size: these bins hold 1-2 rows, too few for a visible dot area.
            {"transform": [{"filter": "datum.observed === 0"}],
             "mark": {"type": "point", "shape": "triangle-down", "filled": False, "size": 70,
                      "strokeWidth": 1.5, "yOffset": -7, "tooltip": {"content": "data"}},
             "encoding": {"x": x, "y": {"value": "height"}, "color": color}},
            diagonal,
        ],
    })
    return spec


def drift_template() -> Spec:
    """One dot per raw input and one for the score (DVC's x: the name; y: the PSI), largest
    first, coloured by band, on a log PSI axis with the band boundaries as dashed rules in
    the colour of the band they open. Log, because PSI spans decades: on a linear 0-0.3 axis
    a run whose every PSI is under 0.001 looked empty (issue 31); the axis always reaches
    past the major-shift boundary, so the chart shows how many decades from a shift each
    input is. Ticks are one per decade plus the boundaries (a linear axis crowded them into
    "0.000.02"). A PSI of 0 (no place on a log axis) is drawn on the left edge."""
    band = (f"datum.psi_value >= {MAJOR_PSI} ? '{MAJOR}' : "
            f"(datum.psi_value >= {MODERATE_PSI} ? '{MODERATE}' : '{STABLE}')")
    spec = _base([{"calculate": f"toNumber(datum['{Y}'])", "as": "psi_value"},
                  {"calculate": band, "as": "psi_band"}])
    ticks = [10.0 ** power for power in range(-6, 1)] + [MODERATE_PSI, MAJOR_PSI]
    x: Spec = {"field": "psi_value", "type": "quantitative",
               "title": "<DVC_METRIC_Y_LABEL>",
               "scale": {"type": "log", "domain": {"unionWith": [MAJOR_PSI * 1.2]}},
               "axis": {"values": sorted(set(ticks)), "format": "~g", "labelOverlap": "greedy"}}
    encoding: Spec = {
        # A grid line per input leads the eye from its name to its dot.
        "y": {"field": X, "type": "nominal", "title": "<DVC_METRIC_X_LABEL>",
              "sort": {"field": "psi_value", "op": "max", "order": "descending"},
              "axis": {"grid": True}},
        "yOffset": {"field": "rev", "type": "nominal", "sort": None},
        "color": {"field": "psi_band", "type": "nominal", "title": "PSI band",
                  "scale": {"domain": list(BAND_COLORS), "range": list(BAND_COLORS.values())}},
    }
    positive = [{"filter": "datum.psi_value > 0"}]
    rules = [{"mark": {"type": "rule", "strokeDash": [4, 4], "strokeWidth": 1.5,
                       "color": BAND_COLORS[name]},
              "encoding": {"x": {"datum": value, "type": "quantitative"}}}
             for name, value in ((MODERATE, MODERATE_PSI), (MAJOR, MAJOR_PSI))]
    spec.update({
        "width": WIDTH, "height": {"step": 14},
        "layer": [
            {"transform": positive,
             "mark": {"type": "circle", "size": 60, "opacity": 1,
                      "tooltip": {"content": "data"}},
             "encoding": {**encoding, "x": x}},
            {"transform": [{"filter": "datum.psi_value <= 0"}],
             "mark": {"type": "circle", "size": 60, "tooltip": {"content": "data"}},
             "encoding": {**encoding, "x": {"value": 0}}},
            *rules,
        ],
    })
    return spec


def importance_template(models: dict[str, str]) -> Spec:
    """Horizontal bars of each model's share per raw input (DVC's x: the input; y: the
    share), grouped by model in its colour (and revision, with `dvc plots diff`); one panel
    per subset (frauds | all rows). Inputs are ordered by their mean share over the models."""
    spec = _base([{"calculate": MODEL_FROM_FILENAME, "as": "model"},
                  {"calculate": "datum.model + ' ' + datum.rev", "as": "model_rev"},
                  {"calculate": f"toNumber(datum['{Y}'])", "as": "share"},
                  {"calculate": _label_expression(FIELD_LABELS), "as": "panel"}])
    color = _color("model", models, "Model")
    color["legend"] = {"symbolType": "square"}
    spec.update({
        "facet": {"column": {"field": "panel", "type": "nominal", "title": None,
                             "sort": {"field": "seen", "op": "min"},
                             "header": {"labelFontSize": 13, "labelFontWeight": "bold"}}},
        "spec": {
            # The step is per bar (yOffset): 5 models x 29 inputs x 4 px, ~600 px.
            "width": PANEL_WIDTH, "height": {"step": 4},
            "mark": {"type": "bar", "tooltip": {"content": "data"}},
            "encoding": {
                "y": {"field": X, "type": "nominal", "title": "<DVC_METRIC_X_LABEL>",
                      "sort": {"field": "share", "op": "mean", "order": "descending"}},
                "yOffset": {"field": "model_rev", "type": "nominal", "sort": None},
                "x": {"field": "share", "type": "quantitative",
                      "title": "<DVC_METRIC_Y_LABEL>", "axis": {"format": "%"}},
                "color": color,
            },
        },
    })
    return spec


def templates() -> dict[str, Spec]:
    """Every template, by the name dvc.yaml gives in `template:`."""
    every_model = dict(MODEL_COLORS)
    trained_per_epoch = {name: MODEL_COLORS[name] for name in STRATEGIES}
    log = {"type": "log"}
    return {
        # fpr on a log axis: the low false-alarm rates where a fraud model is used get the
        # width, and the whole curve stays in view (the tutorial's zoom cuts it at 20 %).
        "model_roc": curve_template(every_model, x_scale=log, y_scale={"zero": False},
                                    x_positive=True),
        "model_curve": curve_template(every_model, y_scale={"zero": False}),
        # Cost spans orders of magnitude (flag everything: every legitimate row is a false
        # alarm); a log y keeps the minimum readable.
        "model_cost": curve_template(every_model, y_scale=log),
        "model_threshold": panels_template(every_model, "Model"),
        "model_reliability": reliability_template(every_model),
        # Loss spans orders of magnitude between strategies (weighted starts near 3): log y.
        "model_loss": panels_template(trained_per_epoch, "Model", y_scale=log),
        "model_epochs": panels_template(trained_per_epoch, "Model", y_scale={"zero": False},
                                        shared_y=False),
        "bias_loss": panels_template(BIAS_COLORS, "Output bias", y_scale=log, by_bias=True),
        "drift_psi": drift_template(),
        "model_importance": importance_template(every_model),
    }


def write_templates(directory: Path) -> list[Path]:
    """Writes each template as `<name>.json` (sorted keys: stable diffs)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, spec in templates().items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n", encoding="utf8")
        written.append(path)
    return written
