"""In-process tests of the model and training code (src/fraud/training/network.py,
src/fraud/training/fit.py).

Small generated data and tiny params keep every fit to a second or two; the stage scripts
themselves are exercised through subprocesses in test_train_stage.py.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import pytest
import yaml

from fraud.core.models import STRATEGIES
from fraud.core.params import MONITORABLE, Params, parse_params
from fraud.data.arrays import load_split
from fraud.errors import PipelineError
from fraud.training import fit as training
from fraud.training import network as keras_model
from tests.credit_card import N_FEATURES

REPO = Path(__file__).resolve().parents[2]
SEED = 42
TRAIN_ROWS, VAL_ROWS, FRAUD_RATE = 4_000, 1_500, 0.03
STRATEGY_EPOCHS = 3


def make_split(rows: int, seed: int, rate: float = FRAUD_RATE, shift: float = 2.0
               ) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal features; frauds are shifted by `shift` in the first three features."""
    rng = np.random.default_rng(seed)
    labels = (rng.random(rows) < rate).astype(np.uint8)
    labels[:2] = 1  # never without positives, whatever the seed
    features = rng.normal(size=(rows, N_FEATURES)).astype(np.float32)
    features[labels == 1, :3] += shift
    return features, labels


def tiny_params(**overrides: dict) -> Params:
    """The repo's params.yaml with small, fast values; overrides are {section: {key: value}}."""
    raw = yaml.safe_load((REPO / "params.yaml").read_text(encoding="utf-8"))
    raw["model"].update(hidden_units=8)
    raw["train"].update(epochs=STRATEGY_EPOCHS, batch_size=256, patience=10)
    for section, values in overrides.items():
        raw[section].update(values)
    return parse_params(raw)


def as_float(split: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return split[0], split[1].astype(np.float32)


@pytest.fixture(scope="module")
def train_split() -> tuple[np.ndarray, np.ndarray]:
    return as_float(make_split(TRAIN_ROWS, 1))


@pytest.fixture(scope="module")
def val_split() -> tuple[np.ndarray, np.ndarray]:
    return as_float(make_split(VAL_ROWS, 2))


@pytest.fixture(scope="module")
def params() -> Params:
    return tiny_params()


def initial_weights(params: Params, labels: np.ndarray) -> list[np.ndarray]:
    keras_model.set_determinism(SEED)
    bias = keras_model.careful_bias(labels)
    return keras_model.make_model(N_FEATURES, params.model, output_bias=bias).get_weights()


def run_strategy(strategy: str, params: Params, train: tuple, val: tuple,
                 weights: list[np.ndarray], steps_per_execution: int | None = None
                 ) -> tuple[training.TrainResult, list[np.ndarray]]:
    """What the train stage does: seed, build, load the initial weights, seed, fit."""
    if steps_per_execution is None:
        steps_per_execution = training.steps_per_execution(strategy, train[1], params.train)
    keras_model.set_determinism(SEED)
    model = keras_model.make_model(N_FEATURES, params.model,
                                   steps_per_execution=steps_per_execution)
    model.set_weights(weights)
    keras_model.set_determinism(SEED)
    result = training.train_strategy(strategy, model, train, val, params.train, SEED)
    return result, model.get_weights()


@pytest.fixture(scope="module")
def strategy_runs(params, train_split, val_split) -> dict[str, list[tuple]]:
    """Each strategy trained twice from the same initial weights (shared by several tests)."""
    weights = initial_weights(params, train_split[1])
    return {strategy: [run_strategy(strategy, params, train_split, val_split, weights)
                       for _ in range(2)]
            for strategy in STRATEGIES}


# --- the model -----------------------------------------------------------------------------

def test_make_model_layer_sizes(params: Params) -> None:
    model = keras_model.make_model(N_FEATURES, params.model)
    assert model.input_shape == (None, N_FEATURES)
    assert model.output_shape == (None, 1)
    hidden, dropout, output = model.layers
    assert hidden.kernel.shape == (N_FEATURES, params.model.hidden_units)
    assert hidden.bias.shape == (params.model.hidden_units,)
    assert dropout.rate == params.model.dropout
    assert output.kernel.shape == (params.model.hidden_units, 1)
    assert output.activation is keras.activations.sigmoid
    np.testing.assert_array_equal(output.bias.numpy(), [0.0])


def test_output_bias_is_initialised_to_the_careful_bias(train_split) -> None:
    bias = keras_model.careful_bias(train_split[1])
    model = keras_model.make_model(N_FEATURES, tiny_params().model, output_bias=bias)
    np.testing.assert_allclose(model.layers[-1].bias.numpy(), [bias], rtol=1e-6)
    # sigmoid(log(pos/neg)) = pos/(pos+neg): the output starts at the base rate.
    pos = train_split[1].mean()
    assert 1 / (1 + math.exp(-bias)) == pytest.approx(pos, rel=1e-9)


def test_careful_bias_is_log_pos_over_neg() -> None:
    labels = np.array([1] * 30 + [0] * 970, dtype=np.uint8)
    assert keras_model.careful_bias(labels) == pytest.approx(math.log(30 / 970), rel=1e-12)
    assert keras_model.careful_bias(labels.astype(np.float32)) == pytest.approx(math.log(30 / 970))


@pytest.mark.parametrize("labels", [np.zeros(100), np.ones(100)], ids=["no_positives",
                                                                          "no_negatives"])
def test_careful_bias_needs_both_classes(labels: np.ndarray) -> None:
    with pytest.raises(PipelineError, match="both classes"):
        keras_model.careful_bias(labels)


def test_history_columns_are_exactly_monitorable(strategy_runs) -> None:
    for strategy, runs in strategy_runs.items():
        history = runs[0][0].history
        assert list(history.columns)[0] == "epoch", strategy
        assert sorted(history.columns[1:]) == sorted(MONITORABLE), strategy
        assert history["epoch"].tolist() == list(range(1, STRATEGY_EPOCHS + 1))


def test_save_model_is_byte_identical_and_loads_safely(tmp_path: Path, params, val_split,
                                                       train_split) -> None:
    model = keras_model.make_model(N_FEATURES, params.model,
                                   output_bias=keras_model.careful_bias(train_split[1]))
    first, second = tmp_path / "a.keras", tmp_path / "b.keras"
    keras_model.save_model(model, first)
    time.sleep(1.1)  # the save time (to the second) must not reach the file
    keras_model.save_model(model, second)
    assert first.read_bytes() == second.read_bytes()
    assert not list(tmp_path.glob("*.rewrite"))

    loaded = keras.saving.load_model(first, safe_mode=True)
    np.testing.assert_array_equal(loaded.predict(val_split[0], batch_size=512, verbose=0),
                                  model.predict(val_split[0], batch_size=512, verbose=0))
    for a, b in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    again = keras_model.load_model(first, "train")
    assert again.name == model.name


def test_saved_config_holds_no_memory_addresses(tmp_path: Path, params) -> None:
    """Keras numbers shared objects by id(); save_model renumbers them, so the bytes do not
    depend on where the process put them (the stage test compares two processes)."""
    import json
    import zipfile

    model = keras_model.make_model(N_FEATURES, params.model)
    keras_model.save_model(model, tmp_path / "m.keras")
    with zipfile.ZipFile(tmp_path / "m.keras") as archive:
        config = json.loads(archive.read("config.json"))
        assert "date_saved" not in json.loads(archive.read("metadata.json"))
    ids: list[int] = []

    def collect(node) -> None:
        if isinstance(node, dict):
            ids.extend(v for k, v in node.items() if k == "shared_object_id")
            for v in node.values():
                collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(config)
    assert ids, "the layers share a dtype policy"
    assert set(ids) == set(range(1, len(set(ids)) + 1))
    shared = {"a": [{"shared_object_id": 99}, {"shared_object_id": 7}, {"shared_object_id": 99}]}
    assert keras_model._renumber_shared_objects(shared) == {
        "a": [{"shared_object_id": 1}, {"shared_object_id": 2}, {"shared_object_id": 1}]}


def test_load_model_errors(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="model not found"):
        keras_model.load_model(tmp_path / "missing.keras", "train")
    junk = tmp_path / "junk.keras"
    junk.write_text("not a zip")
    with pytest.raises(PipelineError, match="junk.keras"):
        keras_model.load_model(junk, "train")


# --- class weights and oversampling -------------------------------------------------------

def test_class_weights_formula() -> None:
    labels = np.array([1] * 10 + [0] * 90, dtype=np.float32)
    weights = training.class_weights(labels)
    assert weights == {0: pytest.approx(100 / 180), 1: pytest.approx(100 / 20)}
    # Both classes weigh the same in total, half the rows each.
    assert weights[0] * 90 == pytest.approx(50)
    assert weights[1] * 10 == pytest.approx(50)


@pytest.mark.parametrize(("neg", "pos", "batch", "steps"), [
    (950, 50, 100, 19), (950, 50, 190, 10), (3880, 120, 256, 31), (1, 5, 2048, 1)])
def test_oversample_steps(neg: int, pos: int, batch: int, steps: int) -> None:
    labels = np.array([0] * neg + [1] * pos, dtype=np.float32)
    assert training.oversample_steps(labels, batch) == steps == math.ceil(2 * neg / batch)


def test_steps_per_execution_is_one_epoch(params) -> None:
    labels = np.array([0] * 950 + [1] * 50, dtype=np.float32)
    assert training.steps_per_execution("baseline", labels, params.train) == math.ceil(1000 / 256)
    assert training.steps_per_execution("weighted", labels, params.train) == math.ceil(1000 / 256)
    assert training.steps_per_execution("oversample", labels, params.train) == math.ceil(1900 / 256)
    fixed = dataclasses.replace(params.train, oversample_steps_per_epoch=7)
    assert training.steps_per_execution("oversample", labels, fixed) == 7


def take(dataset, n: int) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(x.numpy(), y.numpy()) for x, y in dataset.take(n)]


def test_balanced_batches_are_seeded(train_split) -> None:
    x, y = train_split
    first = take(training.balanced_batches(x, y, 512, seed=7), 3)
    again = take(training.balanced_batches(x, y, 512, seed=7), 3)
    other = take(training.balanced_batches(x, y, 512, seed=8), 3)
    for (xa, ya), (xb, yb) in zip(first, again, strict=True):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(first[0][0], other[0][0])
    # Successive batches differ too.
    assert not np.array_equal(first[0][0], first[1][0])


def test_balanced_batches_are_balanced_and_draw_real_rows(train_split) -> None:
    x, y = train_split
    batches = take(training.balanced_batches(x, y, 512, seed=SEED), 20)
    positives = {row.tobytes() for row in x[y == 1]}
    negatives = {row.tobytes() for row in x[y == 0]}
    assert not positives & negatives
    drawn = 0
    fraud = 0
    seen_pos: set[bytes] = set()
    for features, labels in batches:
        assert features.shape == (512, N_FEATURES) and features.dtype == np.float32
        assert labels.shape == (512, 1) and labels.dtype == np.float32
        assert set(np.unique(labels)) <= {0.0, 1.0}
        for row, label in zip(features, labels[:, 0], strict=True):
            key = row.tobytes()
            if label == 1:
                assert key in positives
                seen_pos.add(key)
            else:
                assert key in negatives
        drawn += len(labels)
        fraud += int(labels.sum())
    share = fraud / drawn
    # 10,240 fair coin flips: the standard deviation of the share is ~0.005.
    assert 0.47 < share < 0.53
    # Oversampling repeats the few frauds, and draws from all of them.
    assert len(seen_pos) > 0.9 * len(positives)


# --- training -------------------------------------------------------------------------------

def test_steps_per_execution_gives_the_same_weights(params, train_split, val_split) -> None:
    weights = initial_weights(params, train_split[1])
    epoch_steps = training.steps_for(len(train_split[1]), params.train.batch_size)
    assert epoch_steps > 1
    one, w_one = run_strategy("baseline", params, train_split, val_split, weights, 1)
    whole, w_whole = run_strategy("baseline", params, train_split, val_split, weights,
                                  epoch_steps)
    for a, b in zip(w_one, w_whole, strict=True):
        np.testing.assert_array_equal(a, b)
    pd.testing.assert_frame_equal(one.history, whole.history, check_exact=False, rtol=1e-5)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_training_is_deterministic(strategy: str, strategy_runs) -> None:
    (first, w_first), (second, w_second) = strategy_runs[strategy]
    assert first.history.equals(second.history)
    assert first.best_epoch == second.best_epoch
    for a, b in zip(w_first, w_second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_strategies_differ(strategy_runs) -> None:
    """Sanity: the three strategies really train differently."""
    losses = {s: runs[0][0].history["loss"].iloc[0] for s, runs in strategy_runs.items()}
    assert len(set(losses.values())) == 3


def test_oversample_starts_from_a_zero_bias(params, train_split, val_split) -> None:
    weights = initial_weights(params, train_split[1])
    assert weights[-1][0] < -2  # the careful bias
    keras_model.set_determinism(SEED)
    model = keras_model.make_model(N_FEATURES, params.model)
    model.set_weights(weights)
    short = dataclasses.replace(params.train, epochs=1, oversample_steps_per_epoch=1)
    training.train_strategy("oversample", model, train_split, val_split, short, SEED)
    # After a single Adam step from 0 the bias is about ±learning_rate, far from -3.5.
    assert abs(float(model.layers[-1].bias.numpy()[0])) < 0.01


def drifting_val() -> tuple[np.ndarray, np.ndarray]:
    """Validation frauds shifted the other way: what training learns makes val_loss worse."""
    return as_float(make_split(VAL_ROWS, 2, shift=-2.0))


def val_loss_of(model, val: tuple[np.ndarray, np.ndarray], batch_size: int) -> float:
    return float(model.evaluate(val[0], val[1].reshape(-1, 1), batch_size=batch_size,
                                verbose=0, return_dict=True)["loss"])


@pytest.mark.parametrize(("patience", "stops_early"), [(20, False), (1, True)],
                         ids=["runs_to_the_last_epoch", "stops_early"])
def test_early_stopping_restores_the_best_weights(patience: int, stops_early: bool,
                                                  train_split) -> None:
    epochs = 6
    params = tiny_params(model={"learning_rate": 0.05},
                         train={"epochs": epochs, "patience": patience, "monitor": "val_loss"})
    val = drifting_val()
    keras_model.set_determinism(SEED)
    model = keras_model.make_model(N_FEATURES, params.model,
                                   output_bias=keras_model.careful_bias(train_split[1]))
    keras_model.set_determinism(SEED)
    result = training.train_strategy("baseline", model, train_split, val, params.train, SEED)
    history = result.history
    epochs_run = len(history)
    # Preconditions: the best epoch is not the last one, and training stopped (or not).
    assert result.best_epoch < epochs_run
    assert history["val_loss"].iloc[-1] > history["val_loss"].min()
    if stops_early:
        assert epochs_run == result.best_epoch + patience < epochs
    else:
        assert epochs_run == epochs
    assert result.best_epoch == int(history["val_loss"].idxmin()) + 1
    best_row = history.loc[history["epoch"] == result.best_epoch].iloc[0]
    recomputed = val_loss_of(model, val, params.train.batch_size)
    assert recomputed == pytest.approx(best_row["val_loss"], rel=1e-6)
    assert recomputed != pytest.approx(history["val_loss"].iloc[-1], rel=1e-3)
    assert result.best_val_metrics["loss"] == best_row["val_loss"]


def test_val_ap_is_exact_average_precision_and_drives_early_stopping(train_split,
                                                                    val_split) -> None:
    from sklearn.metrics import average_precision_score

    params = tiny_params(model={"learning_rate": 0.05},
                         train={"epochs": 6, "patience": 20, "monitor": "val_ap"})
    keras_model.set_determinism(SEED)
    model = keras_model.make_model(N_FEATURES, params.model,
                                   output_bias=keras_model.careful_bias(train_split[1]))
    keras_model.set_determinism(SEED)
    result = training.train_strategy("baseline", model, train_split, val_split, params.train, SEED)
    history = result.history
    assert "val_ap" in history.columns and "val_prc" in history.columns
    assert result.best_epoch == int(history["val_ap"].idxmax()) + 1
    scores = model(val_split[0], training=False).numpy().reshape(-1)  # best weights restored
    exact = average_precision_score(val_split[1], scores)
    assert exact == pytest.approx(history.loc[result.best_epoch - 1, "val_ap"], rel=1e-12)
    assert (history["val_ap"] != history["val_prc"]).any()  # not Keras' binned PR-AUC


def test_fit_without_early_stopping_keeps_the_last_epoch(params, train_split, val_split) -> None:
    keras_model.set_determinism(SEED)
    model = keras_model.make_model(N_FEATURES, params.model)
    two_epochs = dataclasses.replace(params.train, epochs=2)
    result = training.fit(model, train_split, val_split, two_epochs, "plain", early_stopping=False)
    assert len(result.history) == 2 and result.best_epoch == 2
    assert len(result.epoch_seconds) == 2


@pytest.mark.parametrize("early_stopping", [True, False])
def test_a_diverging_fit_stops_in_one_line(params, early_stopping: bool,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A NaN loss (here: huge inputs at learning rate 1) ends the fit at once with the epoch
    and what to do, instead of NaN metrics that crash the stage's JSON writer."""
    train = as_float(make_split(2_000, 1))
    train[0][:5] = 1e30
    diverging = tiny_params(model={"learning_rate": 1.0})
    keras_model.set_determinism(SEED)
    model = keras_model.make_model(N_FEATURES, diverging.model, steps_per_execution=8)
    many = dataclasses.replace(params.train, epochs=50)
    with pytest.raises(PipelineError, match=r"baseline: the loss became NaN or infinite at "
                                            r"epoch 1 \(model\.learning_rate = 1\); lower"):
        training.fit(model, train, as_float(make_split(500, 2)), many, "baseline",
                     early_stopping=early_stopping)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(("monitor", "mode"), [
    ("val_loss", "min"), ("val_prc", "max"), ("val_auc", "max"), ("val_fn", "min"),
    ("val_fp", "min"), ("val_brier", "min"), ("val_recall", "max"), ("loss", "min"),
    ("prc", "max")])
def test_monitor_mode(monitor: str, mode: str) -> None:
    assert training.monitor_mode(monitor) == mode


# Which way is better for each metric the model logs, stated here independently of train.py's
# LOWER_IS_BETTER: a metric added to MONITORABLE must be added here too.
BETTER = {"loss": "min", "cross_entropy": "min", "brier": "min", "fp": "min", "fn": "min",
          "tp": "max", "tn": "max", "accuracy": "max", "precision": "max", "recall": "max",
          "auc": "max", "prc": "max", "ap": "max"}


def test_every_monitorable_stops_early_in_the_right_direction() -> None:
    for monitor in MONITORABLE:
        assert training.monitor_mode(monitor) == BETTER[monitor.removeprefix("val_")], monitor


def test_best_epoch_takes_the_first_best() -> None:
    history = pd.DataFrame({"epoch": [1, 2, 3, 4], "val_loss": [0.5, 0.3, 0.3, 0.4],
                            "val_prc": [0.1, 0.4, 0.4, 0.2]})
    assert training.best_epoch(history, "val_loss") == 2
    assert training.best_epoch(history, "val_prc") == 2


def test_fit_rejects_an_unknown_monitor(params, train_split, val_split) -> None:
    bad = dataclasses.replace(params.train, monitor="val_bogus")
    model = keras_model.make_model(N_FEATURES, params.model)
    with pytest.raises(PipelineError, match="val_prc"):
        training.fit(model, train_split, val_split, bad, "bad")


def test_initial_loss_matches_the_base_rate(params, train_split) -> None:
    model = keras_model.make_model(N_FEATURES, params.model,
                                   output_bias=keras_model.careful_bias(train_split[1]))
    careful = training.initial_loss(model, train_split)
    model.layers[-1].bias.assign([0.0])
    zero = training.initial_loss(model, train_split)
    assert careful < zero
    assert careful == pytest.approx(training.expected_initial_loss(train_split[1]), rel=0.5)
    assert zero == pytest.approx(float(model.evaluate(
        train_split[0], train_split[1].reshape(-1, 1), batch_size=512, verbose=0)), rel=1e-5)


def test_bias_comparison_runs_start_from_a_fresh_optimizer(params, train_split,
                                                           val_split) -> None:
    """init_bias trains one model twice (zero, then careful bias): the careful run must be the
    run a brand-new model with a new Adam gives, not one carrying the zero run's momentum."""
    from src.stages.init_bias import _compare_biases

    bias = keras_model.careful_bias(train_split[1])
    epochs = dataclasses.replace(params.init_bias, compare_epochs=3)
    settings = dataclasses.replace(params, init_bias=epochs)
    keras_model.set_determinism(params.seed)
    model = keras_model.make_model(N_FEATURES, params.model, output_bias=bias)
    initial = model.get_weights()
    results = _compare_biases(model, initial, bias, train_split, val_split, settings)

    keras_model.set_determinism(params.seed)  # as before `model`: the same dropout seed
    fresh = keras_model.make_model(N_FEATURES, params.model)
    fresh.set_weights(initial)
    fresh.layers[-1].bias.assign([bias])
    keras_model.set_determinism(params.seed)
    alone = training.fit(fresh, train_split, val_split,
                         dataclasses.replace(params.train, epochs=3), "alone",
                         early_stopping=False, seed=params.seed)
    np.testing.assert_allclose(results["careful"].history["loss"], alone.history["loss"],
                               rtol=1e-6)


# --- load_split ---------------------------------------------------------------------------

@pytest.fixture()
def split_files(tmp_path: Path) -> tuple[Path, Path]:
    features, labels = make_split(300, 3)
    fpath, lpath = tmp_path / "features.npy", tmp_path / "labels.npy"
    np.save(fpath, features)
    np.save(lpath, labels)
    return fpath, lpath


def test_load_split_reads_a_good_split(split_files) -> None:
    features, labels = load_split(*split_files)
    assert features.shape == (300, N_FEATURES) and features.dtype == np.float32
    assert labels.shape == (300,) and labels.dtype == np.float32
    np.testing.assert_array_equal(labels, np.load(split_files[1]))


def _features(rows: int = 300) -> np.ndarray:
    return make_split(rows, 3)[0]


def _labels(rows: int = 300) -> np.ndarray:
    return make_split(rows, 3)[1]


def _with_nan() -> np.ndarray:
    features = _features()
    features[17, 4] = np.nan
    return features


def _label_two() -> np.ndarray:
    labels = _labels()
    labels[5] = 2
    return labels


BAD_SPLITS = {
    # name: (which file is bad, its new content, words the message must contain)
    "28_columns": ("features", lambda: _features()[:, :28], "(rows, 29)"),
    "1d_features": ("features", lambda: _features().reshape(-1), "(rows, 29)"),
    "integer_features": ("features", lambda: _features().astype(np.int64), "dtype"),
    "nan_features": ("features", _with_nan, "finite"),
    "inf_features": ("features", lambda: np.where(_features() > 3, np.inf, _features()),
                     "finite"),
    "labels_too_short": ("labels", lambda: _labels()[:-1], "expected 300 labels"),
    "labels_2d": ("labels", lambda: _labels().reshape(-1, 1), "expected 300 labels"),
    "label_two": ("labels", _label_two, "holds label 2;"),
    "no_positives": ("labels", lambda: np.zeros(300, dtype=np.uint8), "no positive"),
}


@pytest.mark.parametrize("case", BAD_SPLITS)
def test_load_split_errors_name_the_file(case: str, split_files) -> None:
    which, content, words = BAD_SPLITS[case]
    fpath, lpath = split_files
    bad = fpath if which == "features" else lpath
    np.save(bad, content())
    with pytest.raises(PipelineError) as error:
        load_split(fpath, lpath, N_FEATURES)
    assert str(bad) in str(error.value)
    assert words in str(error.value)


@pytest.mark.parametrize("which", ["features", "labels"])
def test_load_split_missing_file(which: str, split_files) -> None:
    fpath, lpath = split_files
    bad = fpath if which == "features" else lpath
    bad.unlink()
    with pytest.raises(PipelineError, match="not found") as error:
        load_split(fpath, lpath)
    assert str(bad) in str(error.value)


@pytest.mark.parametrize("content", [b"Time,V1,V2\n1,2,3\n", b"", b"\x93NUMPY garbage"],
                         ids=["csv_text", "empty", "truncated_header"])
def test_load_split_not_an_npy_file(content: bytes, split_files) -> None:
    fpath, lpath = split_files
    fpath.write_bytes(content)
    with pytest.raises(PipelineError, match="not a readable .npy") as error:
        load_split(fpath, lpath)
    assert str(fpath) in str(error.value)


def test_load_split_pickled_object_array_is_refused(split_files) -> None:
    fpath, lpath = split_files
    np.save(fpath, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(PipelineError, match="not a readable .npy") as error:
        load_split(fpath, lpath)
    assert str(fpath) in str(error.value)


def test_shuffled_batches_show_every_row_once_per_epoch() -> None:
    """Each epoch of shuffled_batches is a permutation of the split in batches (the last one
    shorter), another one each epoch, the same on every run; weights follow the class."""
    features = np.arange(23, dtype=np.float32).reshape(-1, 1).repeat(3, axis=1)
    labels = (np.arange(23) % 5 == 0).astype(np.float32)
    weights = {0: 0.5, 1: 4.0}

    def epochs(seed: int) -> list[list[tuple]]:
        batches = list(training.shuffled_batches(features, labels, 5, seed, weights).take(10))
        return [batches[:5], batches[5:]]

    first, second = epochs(7)
    for epoch in (first, second):
        assert [len(x) for x, _, _ in epoch] == [5, 5, 5, 5, 3]
        rows = np.concatenate([x[:, 0].numpy() for x, _, _ in epoch]).astype(int)
        assert sorted(rows) == list(range(23))
        for x, y, w in epoch:
            np.testing.assert_array_equal(y.numpy()[:, 0], labels[x[:, 0].numpy().astype(int)])
            np.testing.assert_array_equal(w.numpy(), np.where(y.numpy()[:, 0] == 1, 4.0, 0.5))
    order = [np.concatenate([x[:, 0].numpy() for x, _, _ in e]) for e in (first, second)]
    assert not np.array_equal(*order)
    again = epochs(7)
    np.testing.assert_array_equal(np.concatenate([x[:, 0].numpy() for x, _, _ in again[0]]),
                                  order[0])
