"""Reading experiments from `dvc exp show --json`: names, states, params and metrics files.

Pure functions of the parsed JSON. The metrics are read generically: a model is whatever has
a file `metrics/<model>.json` (for the model names of the pipeline), so a new stage or peer
needs no change here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.models import STRATEGIES
from ..errors import PipelineError

try:  # the pipeline's one list of model names, once the peers are stages
    from ..core.models import MODELS
except ImportError:  # before that change: the Keras strategies and the planned peers
    MODELS = (*STRATEGIES, "logreg", "gbdt")

MODEL_METRICS = "metrics/{model}.json"
CHOICE_METRICS = "metrics/evaluate.json"
CHOICE_KEYS = ("model", "strategy")  # `strategy`: the metrics files before per-model evaluate
# Best first: when several queue entries share a name, the one that finished well counts.
STATES = ("success", "running", "queued", "failed")


@dataclass(frozen=True)
class Experiment:
    """One experiment as `dvc exp show --json` describes it."""
    name: str
    rev: str
    baseline: str
    state: str                          # success | running | queued | failed
    params: dict[str, Any]              # params.yaml's content
    metrics: dict[str, dict[str, Any]]  # metrics file path -> its flat content


def _file_data(section: Any) -> dict[str, dict[str, Any]]:
    """{path: {"data": {...}}} (or {"error": ...}) -> {path: {...}}, readable files only."""
    result = {}
    for path, entry in (section or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("data"), dict):
            result[path] = entry["data"]
    return result


def _state(group: Mapping[str, Any], entry: Mapping[str, Any]) -> str:
    state = (group.get("executor") or {}).get("state")
    if entry.get("error") or state == "failed":
        return "failed"
    return state if state in STATES else "success"


def _entries(commit: Mapping[str, Any]):
    baseline = str(commit.get("rev", ""))
    for group in commit.get("experiments") or []:
        for entry in group.get("revs") or []:
            name = entry.get("name") or group.get("name")
            if name:
                yield baseline, group, entry, name


def experiments_from_show(show: Any) -> dict[str, Experiment]:
    """Named experiments in `dvc exp show --json` output (DVC 3): a list of baseline
    commits, each with `experiments: [{name, executor, revs: [{rev, name, data, error}]}]`;
    `data` holds `params` and `metrics` as {file: {"data": {...}}}. Every state is kept
    (a finished experiment is `success`); with two entries of one name the best state wins."""
    if not isinstance(show, list):
        raise PipelineError("dvc exp show --json: expected a list of commits; is this DVC 3?")
    found: dict[str, Experiment] = {}
    for commit in show:
        if not isinstance(commit, dict):
            continue
        for baseline, group, entry, name in _entries(commit):
            data = entry.get("data") if isinstance(entry.get("data"), dict) else {}
            state = _state(group, entry)
            experiment = Experiment(
                name=name, rev=str(entry.get("rev") or data.get("rev")), baseline=baseline,
                state=state, params=_file_data(data.get("params")).get("params.yaml", {}),
                metrics=_file_data(data.get("metrics")) if state == "success" else {})
            known = found.get(name)
            if known is None or STATES.index(state) < STATES.index(known.state):
                found[name] = experiment
    return found


def finished(experiment: Experiment | None) -> bool:
    """Ran to the end and has metrics: a sweep reuses it instead of running it again."""
    return experiment is not None and experiment.state == "success" and \
        bool(experiment.metrics)


def model_metrics(experiment: Experiment, models: Sequence[str] = MODELS
                  ) -> dict[str, dict[str, Any]]:
    """{model: its metrics} for every model with a `metrics/<model>.json` in the experiment."""
    return {model: experiment.metrics[MODEL_METRICS.format(model=model)] for model in models
            if MODEL_METRICS.format(model=model) in experiment.metrics}


def chosen_model(experiment: Experiment) -> tuple[str, dict[str, Any]] | None:
    """The model the pipeline chose (`metrics/evaluate.json`) and its metrics, or None."""
    values = experiment.metrics.get(CHOICE_METRICS)
    if values is None:
        return None
    for key in CHOICE_KEYS:
        if isinstance(values.get(key), str):
            return values[key], values
    raise PipelineError(f"experiment {experiment.name}: {CHOICE_METRICS} names no model "
                        f"(no {' or '.join(repr(k) for k in CHOICE_KEYS)} key)")


def same_value(given: str, actual: Any) -> bool:
    """`-S key=32` against the params as DVC shows them (32): equal as text or as YAML."""
    import yaml

    if str(actual) == given:
        return True
    try:
        return yaml.safe_load(given) == actual
    except yaml.YAMLError:
        return False


def dotted(params: Mapping[str, Any], key: str) -> Any:
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def check_params(experiment: Experiment, expected: Mapping[str, str]) -> None:
    """The experiment ran with the params its name promises (guards against a name reused
    by hand for something else)."""
    wrong = [f"{key}={dotted(experiment.params, key)!r} (expected {value})"
             for key, value in expected.items()
             if not same_value(value, dotted(experiment.params, key))]
    if wrong:
        raise PipelineError(f"experiment {experiment.name} ran with " + ", ".join(wrong) +
                            "; remove it (dvc exp remove) or choose another --prefix")
