"""The charts of `dvc plots show`: colour is the model (the same colour everywhere, from
src/fraud/evaluation/colors.py), every axis has a title, the templates on disk are the generated
ones.

The specs checked are the ones DVC itself fills: `dvc plots show --json` runs on a small
repository holding the project's `plots:` section, its templates and tiny CSVs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest
import yaml

from fraud.core.models import STRATEGIES
from fraud.evaluation.colors import BAND_COLORS, BIAS_COLORS, MODEL_COLORS, model_color
from fraud.evaluation.plot_templates import MODEL_FROM_FILENAME, templates

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIR = ROOT / ".dvc" / "plots"
ANCHOR = re.compile(r"<DVC_METRIC_[A-Z_]+>")
RAW_NAMES = {"y", "x", "step", "dvc_inferred_y_value", "dvc_inferred_x_value"}


def project_plots() -> list[tuple[str, dict]]:
    """The data-series plots of dvc.yaml's top-level `plots:` (id, definition)."""
    plots = yaml.safe_load((ROOT / "dvc.yaml").read_text())["plots"]
    return [next(iter(entry.items())) for entry in plots if isinstance(entry, dict)]


def test_templates_on_disk_are_the_generated_ones() -> None:
    expected = templates()
    on_disk = {path.stem: json.loads(path.read_text()) for path in TEMPLATE_DIR.glob("*.json")}
    assert on_disk == expected, "run `python -m tools.make_plot_templates` and commit .dvc/plots"


def test_every_plot_uses_a_project_template_with_titled_axes() -> None:
    for plot_id, plot in project_plots():
        assert plot.get("template") in templates(), (plot_id, plot.get("template"))
        for key in ("title", "x_label", "y_label"):
            assert plot.get(key), f"plot {plot_id!r} has no {key}"


def test_model_name_comes_from_the_file_name() -> None:
    """The Vega expression's pattern, applied as Vega applies it (global replace)."""
    pattern = re.search(r"regexp\('(.*)', 'g'\)", MODEL_FROM_FILENAME).group(1)
    pattern = pattern.encode().decode("unicode_escape")  # the expression's string literal
    for filename in ("plots/roc/gbdt.csv", "gbdt.csv", "roc\\gbdt.csv", "a.b/gbdt.csv"):
        assert re.sub(pattern, "", filename) == "gbdt", filename


def test_model_colour_is_one_map_for_pngs_and_charts() -> None:
    assert set(STRATEGIES) <= set(MODEL_COLORS)
    assert len(set(MODEL_COLORS.values())) == len(MODEL_COLORS)
    assert not set(BIAS_COLORS.values()) & set(MODEL_COLORS.values())
    assert model_color("resampled") == model_color("oversample") == MODEL_COLORS["oversample"]


def _fixture_rows(columns: list[str]) -> str:
    rows = [",".join(columns)]
    for i in range(1, 6):  # positive values: log axes drop zeros
        rows.append(",".join(str(i if c == "epoch" else round(0.15 * i, 2)) for c in columns))
    return "\n".join(rows) + "\n"


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """`dvc plots show --json` on the project's plots, with tiny data: {plot id: spec}."""
    repo = tmp_path_factory.mktemp("plots_repo")
    env = dict(os.environ, DVC_NO_ANALYTICS="1", GIT_TERMINAL_PROMPT="0")
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run(["git", "init", "-q"], cwd=repo, env=env, check=True)
    subprocess.run([*dvc, "init", "-q"], cwd=repo, env=env, check=True)
    shutil.copytree(TEMPLATE_DIR, repo / ".dvc" / "plots")
    columns: dict[str, list[str]] = {}
    for _, plot in project_plots():
        for path, fields in plot["y"].items():
            fields = fields if isinstance(fields, list) else [fields]
            columns.setdefault(path, [plot["x"]])
            columns[path] += [f for f in fields if f not in columns[path]]
    for path, names in columns.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(_fixture_rows(names))
    plots = [{plot_id: plot} for plot_id, plot in project_plots()]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}, sort_keys=False))
    # From a subfolder: templates named in .dvc/plots are found from anywhere in the repo.
    (repo / "sub").mkdir()
    done = subprocess.run([*dvc, "plots", "show", "--json"], cwd=repo / "sub", env=env,
                          capture_output=True, text=True, check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert not shown.get("errors"), shown["errors"]
    return {plot_id: entries[0]["content"] for plot_id, entries in shown["data"].items()
            if entries and entries[0]["type"] == "vega"}


# Horizontal charts (bars, dots): DVC's x (a name: a raw input) is drawn on the vertical
# axis, its y (PSI, a share) on the horizontal one.
HORIZONTAL = {"Drift", "Importance"}


def _layers(spec: dict) -> list[dict]:
    """The unit views of a chart: its own, its faceted `spec`'s, or their layers."""
    view = spec.get("spec", spec)
    return view.get("layer", [view])


def _units(spec: dict) -> list[dict]:
    """The views that draw data marks: the first layer (the others draw the same marks for
    several revisions, dots, or reference rules)."""
    return _layers(spec)[:1]


def _axes(plot_id: str) -> dict[str, str]:
    """Which of DVC's labels each drawn axis carries."""
    return {"x": "y", "y": "x"} if plot_id in HORIZONTAL else {"x": "x", "y": "y"}


def test_every_project_plot_is_rendered(specs: dict[str, dict]) -> None:
    assert set(specs) == {plot_id for plot_id, _ in project_plots()}


def test_colour_is_the_model_in_every_chart(specs: dict[str, dict]) -> None:
    for plot_id, plot in project_plots():
        for unit in _units(specs[plot_id]):
            color = unit["encoding"]["color"]
            scale = dict(zip(color["scale"]["domain"], color["scale"]["range"], strict=True))
            if plot_id == "Bias-Init":
                assert scale == BIAS_COLORS
                continue
            if plot_id == "Drift":  # no model: the PSI band
                assert scale == BAND_COLORS and unit["encoding"]["yOffset"]["field"] == "rev"
                continue
            assert color["title"] == "Model", plot_id
            assert all(scale[name] == model_color(name) for name in scale), plot_id
            # Every file's model has a colour (a model missing from the domain is not drawn).
            models = {PurePosixPath(path).stem for path in plot["y"]}
            assert models <= set(scale), (plot_id, models - set(scale))


def test_a_revision_is_a_dash_only_with_several(specs: dict[str, dict]) -> None:
    """Issue 31: every legend said "Revision: workspace". A line is drawn by one of two
    layers: solid with no revision legend for one revision, dashed by `rev` for several
    (`dvc plots diff`). Bars show a revision as an offset, which has no legend."""
    for plot_id, _ in project_plots():
        spec = specs[plot_id]
        assert {"joinaggregate": [{"op": "distinct", "field": "rev", "as": "revisions"}]} in (
            spec["transform"]), plot_id
        layers = _layers(spec)
        if plot_id in HORIZONTAL:
            assert layers[0]["encoding"]["yOffset"]["field"] in ("rev", "model_rev"), plot_id
            continue
        dashed = [layer for layer in layers if "strokeDash" in layer["encoding"]]
        assert dashed, plot_id
        for layer in dashed:
            dash = layer["encoding"]["strokeDash"]
            assert dash["field"] == "rev" and not dash["title"].strip(), plot_id
            assert layer["transform"][0] == {"filter": "datum.revisions > 1"}, plot_id
            twin = {**layer, "transform": [{"filter": "datum.revisions <= 1"},
                                           *layer["transform"][1:]]}
            twin["encoding"] = {k: v for k, v in layer["encoding"].items() if k != "strokeDash"}
            assert any({k: v for k, v in other.items() if k != "params"} == twin
                       for other in layers), (plot_id, "no single-revision twin")


def test_every_axis_has_a_title(specs: dict[str, dict]) -> None:
    for plot_id, plot in project_plots():
        spec = specs[plot_id]
        assert not ANCHOR.search(json.dumps(spec)), f"{plot_id}: unfilled anchor"
        assert spec["title"]["text"] == plot["title"]
        for unit in _units(spec):
            for axis, label in _axes(plot_id).items():
                title = unit["encoding"][axis].get("title")
                assert title and title not in RAW_NAMES, (plot_id, axis, title)
                assert title == plot[f"{label}_label"], (plot_id, axis)


def test_reliability_is_log_log_with_the_diagonal_and_bin_rows(specs: dict[str, dict]) -> None:
    """Issue 31: a symlog y axis, lines plunging to 0 in few-row bins, no diagonal."""
    layers = specs["Calibration"]["layer"]
    *marks, diagonal = layers
    assert diagonal["mark"]["type"] == "rule"
    encoding = diagonal["encoding"]
    assert encoding["x"]["field"] == encoding["y"]["field"]
    assert encoding["x2"] == encoding["y2"] == {"datum": 1}
    for layer in layers:
        for axis in ("x", "y"):
            if "field" in layer["encoding"][axis]:
                assert layer["encoding"][axis]["scale"] == {"type": "log"}, (axis, layer)
    lines = [layer for layer in marks if layer["mark"]["type"] == "line"]
    assert lines and all({"filter": "datum.observed > 0"} in layer["transform"]
                         for layer in lines)
    dots = [layer for layer in marks if "size" in layer["encoding"]]
    assert [dot["encoding"]["size"]["field"] for dot in dots] == ["bin_rows"]
    no_fraud = [layer for layer in marks if layer["encoding"]["y"] == {"value": "height"}]
    assert [layer["transform"] for layer in no_fraud] == [[{"filter": "datum.observed === 0"}]]


def test_reliability_reads_the_rows_column_calibration_writes() -> None:
    import numpy as np

    from fraud.evaluation.calibration import reliability
    from fraud.evaluation.plot_templates import RELIABILITY_ROWS

    curve = reliability(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.2, 0.8]), 2, "width")
    assert RELIABILITY_ROWS in curve.columns and curve[RELIABILITY_ROWS].sum() == 4
    plot = dict(project_plots())["Calibration"]
    assert plot["x"] == "mean_predicted" and set(plot["y"].values()) == {"observed_rate"}


def test_drift_is_on_a_log_psi_axis_with_spaced_ticks(specs: dict[str, dict]) -> None:
    """Issue 31: every committed PSI is under 0.001, which looked like an empty 0-0.30
    linear axis, and its crowded tick labels ran together ("0.000.02")."""
    import itertools
    import math

    from fraud.monitoring.drift import MAJOR_PSI, MODERATE_PSI

    dots, at_zero, *rules = specs["Drift"]["layer"]
    x = dots["encoding"]["x"]
    assert x["scale"]["type"] == "log" and max(x["scale"]["domain"]["unionWith"]) > MAJOR_PSI
    ticks = sorted(x["axis"]["values"])
    assert {MODERATE_PSI, MAJOR_PSI} <= set(ticks)
    # A third of a decade or more between labels: ~20 px or more on any PSI range.
    assert min(math.log10(b / a) for a, b in itertools.pairwise(ticks)) > 0.33
    assert at_zero["encoding"]["x"] == {"value": 0}  # a PSI of 0 on the left edge
    assert [rule["encoding"]["x"]["datum"] for rule in rules] == [MODERATE_PSI, MAJOR_PSI]
