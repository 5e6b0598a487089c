"""The scikit-learn peers: logistic regression and gradient-boosted trees on the pipeline's
scaled splits, tuned on validation, saved with skops and loaded only if every type is trusted.
(The first tests cover the older class-weighted peer that compare_seeds still uses.)"""

from __future__ import annotations

import copy
import io
import json
import zipfile

import numpy as np
import pytest
import skops.io as sio
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from sklearn.preprocessing import FunctionTransformer
from threadpoolctl import threadpool_limits

from fraud.core.params import Params, SplitParams, parse_params
from fraud.data.prepare import clean, features_and_labels, fit_scaler, scale, split
from fraud.data.synthetic import generate_creditcard
from fraud.errors import PipelineError
from fraud.kinds._scikit import THREADS as GBDT_THREADS
from fraud.kinds._scikit import load_model as load_peer
from fraud.kinds._scikit import save_model as save_peer
from fraud.kinds._scikit import scores as peer_scores
from fraud.kinds._scikit import trusted_nodes
from fraud.kinds.base import Fit
from fraud.kinds.gbdt import GbdtParams, first_iterations, fit_gbdt
from fraud.kinds.logreg import LogregParams, fit_logreg
from fraud.kinds.registry import kind


def fit_peer(name: str, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
             params: Params) -> Fit:
    """What the train_peer stage does: the kind's fit on its section and the seed."""
    model = kind(name)
    return model.fit(train, val, getattr(params, model.section), params.seed)


@pytest.fixture(scope="module")
def splits() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Synthetic data of the real shape, through the pipeline's own clean/split/scale."""
    parts = split(clean(generate_creditcard(6000, 0.02, 3), 0.001),
                  SplitParams("stratified", True, 0.2, 0.2), 3)
    tables = {name: features_and_labels(getattr(parts, name)) for name in ("train", "val", "test")}
    scaler = fit_scaler(tables["train"][0])
    return {name: (scale(x, scaler, 5.0), y) for name, (x, y) in tables.items()}


# === the peers in the DAG: train_logreg / train_gbdt ========================================

LOGREG = LogregParams(c_grid=(0.01, 0.1, 1.0, 10.0), class_weight="none", max_iter=1000)
# Small and quick: a high learning rate and a short patience on a few thousand rows.
GBDT = GbdtParams(learning_rate=0.2, l2_regularization=1.0, max_iter=200, max_leaf_nodes=15,
                  min_samples_leaf=20, n_iter_no_change=5, scoring="average_precision")


@pytest.mark.parametrize("features, labels, fragment", [
    (np.zeros((10, 3)), np.zeros(10), "single class"),
    (np.zeros((10, 3)), np.array([0, 1] * 4), "10 feature rows but 8 labels"),
    (np.full((4, 2), np.nan), np.array([0, 1, 0, 1]), "NaN"),
    (np.zeros((4, 2)), np.array([0, 2, 0, 1]), "0 or 1"),
    (np.zeros(4), np.array([0, 1, 0, 1]), "2-D"),
])
def test_bad_input_is_a_pipeline_error(features, labels, fragment) -> None:
    with pytest.raises(PipelineError, match=fragment):
        fit_logreg((features, labels), (features, labels), LOGREG, seed=0)


@pytest.fixture(scope="module")
def params(repo_params_raw) -> Params:
    raw = copy.deepcopy(repo_params_raw)
    raw["gbdt"].update(max_iter=200, learning_rate=0.2, n_iter_no_change=5)
    return parse_params(raw)


@pytest.fixture(scope="module")
def fits(splits, params) -> dict:
    """Each peer fitted once on the synthetic splits (shared: the fits are the slow part)."""
    return {name: fit_peer(name, splits["train"], splits["val"], params)
            for name in ("logreg", "gbdt")}


@pytest.mark.parametrize("name, estimator", [("logreg", LogisticRegression),
                                             ("gbdt", HistGradientBoostingClassifier)])
def test_fit_peer_gives_the_named_estimator_and_a_summary(name, estimator, fits, splits) -> None:
    fitted = fits[name]
    assert type(fitted.model) is estimator
    summary = fitted.summary
    assert summary["model"] == name
    scores = peer_scores(fitted.model, splits["val"][0])
    assert summary["val_ap"] == pytest.approx(average_precision_score(splits["val"][1], scores))
    assert summary["val_ap"] > 0.3
    assert 0 <= summary["fit_seconds"] < 60
    json.dumps(summary, allow_nan=False)  # plain JSON, as metrics/val/<model>.json


def test_logreg_is_plain_by_default(fits, params) -> None:
    settings = fits["logreg"].model.get_params()
    assert settings["class_weight"] is None and params.logreg.class_weight == "none"
    assert settings["C"] == fits["logreg"].summary["c"]


@pytest.mark.parametrize("name", ["logreg", "gbdt"])
def test_save_load_round_trip_gives_identical_probabilities(name, fits, splits, tmp_path) -> None:
    path = tmp_path / f"{name}.skops"
    save_peer(fits[name].model, path)
    loaded = load_peer(path, f"train_{name}")
    features = splits["test"][0]
    before, after = peer_scores(fits[name].model, features), peer_scores(loaded, features)
    assert after.dtype == np.float64 and after.shape == (len(features),)
    np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("name", ["logreg", "gbdt"])
def test_two_fits_with_the_same_seed_are_identical(name, fits, splits, params) -> None:
    again = fit_peer(name, splits["train"], splits["val"], params)
    features = splits["test"][0]
    np.testing.assert_array_equal(peer_scores(fits[name].model, features),
                                  peer_scores(again.model, features))
    drop = ("fit_seconds",)
    assert ({k: v for k, v in again.summary.items() if k not in drop}
            == {k: v for k, v in fits[name].summary.items() if k not in drop})


@pytest.mark.parametrize("name", ["logreg", "gbdt"])
def test_two_fits_save_to_the_same_bytes(name, fits, splits, params, tmp_path) -> None:
    """skops alone writes object ids and the time into the file; save_peer does not."""
    again = fit_peer(name, splits["train"], splits["val"], params)
    first, second = tmp_path / "first.skops", tmp_path / "second.skops"
    save_peer(fits[name].model, first)
    save_peer(again.model, second)
    assert first.read_bytes() == second.read_bytes()
    # Why the canonical form exists: two live, equal models get different ids in skops' files.
    assert sio.dumps(fits[name].model) != sio.dumps(again.model)


def test_logreg_chooses_the_c_with_the_best_validation_ap(splits) -> None:
    fitted = fit_logreg(splits["train"], splits["val"], LOGREG, seed=0)
    summary = fitted.summary
    by_hand = []
    for c in LOGREG.c_grid:
        model = LogisticRegression(C=c, max_iter=1000).fit(*splits["train"])
        by_hand.append(average_precision_score(splits["val"][1],
                                               model.predict_proba(splits["val"][0])[:, 1]))
    assert summary["c_grid"] == list(LOGREG.c_grid)
    assert summary["grid_val_ap"] == pytest.approx(by_hand)
    assert summary["c"] == LOGREG.c_grid[int(np.argmax(by_hand))]
    assert summary["val_ap"] == max(summary["grid_val_ap"])


def test_logreg_choice_follows_the_validation_split() -> None:
    """One informative feature: C only scales the coefficient, so the ranking (and the val AP)
    is the same for every C when the val labels agree with train; the tie goes to the smallest.
    With val labels that reward the opposite sign, a huge C cannot help either, but the val AP
    is still what decides (a known-best case: a grid of one)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 1))
    y = (x[:, 0] + rng.normal(scale=0.5, size=2000) > 1.5).astype(float)
    train, val = (x[:1500], y[:1500]), (x[1500:], y[1500:])
    grid = LogregParams(c_grid=(10.0, 0.001, 1.0), class_weight="none", max_iter=100)
    assert fit_logreg(train, val, grid, seed=0).summary["c"] == 0.001
    single = LogregParams(c_grid=(3.0,), class_weight="balanced", max_iter=100)
    fitted = fit_logreg(train, val, single, seed=0)
    assert fitted.summary["c"] == 3.0 and fitted.model.get_params()["class_weight"] == "balanced"


def _easy(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 5)).astype(np.float32)
    labels = (features[:, 0] + 0.5 * features[:, 1] > 1.6).astype(np.float32)
    return features, labels


def test_gbdt_stops_early_on_the_given_validation_split() -> None:
    train, val = _easy(2000, 1), _easy(800, 2)
    fitted = fit_gbdt(train, val, GBDT, seed=0)
    summary = fitted.summary
    assert summary["stopped_early"] and summary["iterations_run"] < GBDT.max_iter
    # The kept model is the best iteration, as Keras restores its best epoch.
    assert summary["n_iter"] <= summary["iterations_run"] - GBDT.n_iter_no_change
    assert fitted.model.n_iter_ == summary["n_iter"]
    search = HistGradientBoostingClassifier(
        learning_rate=0.2, l2_regularization=1.0, max_iter=200, max_leaf_nodes=15,
        early_stopping=True, validation_fraction=None, n_iter_no_change=5,
        scoring="average_precision", random_state=0)
    with threadpool_limits(GBDT_THREADS, user_api="openmp"):
        search.fit(*train, X_val=val[0], y_val=val[1])
    assert search.n_iter_ == summary["iterations_run"]
    staged = list(search.staged_predict_proba(val[0]))[summary["n_iter"] - 1][:, 1]
    np.testing.assert_allclose(peer_scores(fitted.model, val[0]), staged, rtol=0, atol=1e-12)
    assert summary["val_ap"] == pytest.approx(max(search.validation_score_))


def test_gbdt_keeps_exactly_the_trees_a_refit_grows() -> None:
    """fit_gbdt cuts the early-stopped fit to its best iteration instead of refitting: the
    trees, the scores and the fitted state are those of a fit with max_iter = best."""
    train, val = _easy(2000, 1), _easy(800, 2)
    fitted = fit_gbdt(train, val, GBDT, seed=0)
    best = fitted.summary["n_iter"]
    refit = HistGradientBoostingClassifier(
        learning_rate=0.2, l2_regularization=1.0, max_iter=best, max_leaf_nodes=15,
        early_stopping=False, validation_fraction=None, n_iter_no_change=5,
        scoring="average_precision", random_state=0)
    with threadpool_limits(GBDT_THREADS, user_api="openmp"):
        refit.fit(*train)
    kept = fitted.model
    assert kept.get_params() == refit.get_params()
    assert len(kept._predictors) == len(refit._predictors) == best
    for (ours,), (theirs,) in zip(kept._predictors, refit._predictors, strict=True):
        np.testing.assert_array_equal(ours.nodes, theirs.nodes)
    np.testing.assert_array_equal(kept.decision_function(val[0]), refit.decision_function(val[0]))
    assert sorted(vars(kept)) == sorted(vars(refit))
    assert kept._scorer is None and not len(kept.validation_score_)
    with pytest.raises(PipelineError, match="cannot keep"):
        first_iterations(kept, best + 1)


def test_gbdt_fit_depends_on_the_validation_labels() -> None:
    train, val = _easy(2000, 1), _easy(800, 2)
    shuffled = (val[0], np.random.default_rng(5).permutation(val[1]))
    first = fit_gbdt(train, val, GBDT, seed=0).summary
    second = fit_gbdt(train, shuffled, GBDT, seed=0).summary
    # Noise labels: the validation AP never improves much, so it stops far sooner.
    assert second["n_iter"] < first["n_iter"]
    assert second["val_ap"] < first["val_ap"]


def test_gbdt_loss_scoring_also_works() -> None:
    train, val = _easy(2000, 1), _easy(800, 2)
    fitted = fit_gbdt(train, val, GbdtParams(**{**GBDT.__dict__, "scoring": "loss"}), seed=0)
    assert fitted.summary["scoring"] == "loss" and fitted.summary["stopped_early"]
    assert fitted.model.get_params()["early_stopping"] is False


def test_fit_peer_needs_both_classes_in_validation(splits, params) -> None:
    features, labels = splits["val"]
    with pytest.raises(PipelineError, match="validation labels hold a single class"):
        fit_peer("gbdt", splits["train"], (features, np.zeros_like(labels)), params)
    with pytest.raises(PipelineError, match="unknown model 'svm'"):
        fit_peer("svm", splits["train"], splits["val"], params)


# --- loading safely ----------------------------------------------------------------------

def test_every_node_of_both_peers_is_trusted_and_needed(fits) -> None:
    """The allow-list is exact: each entry is used by one of the two models, or by gbdt
    with categorical columns (scikit-learn's ordinal encoder of them)."""
    from fraud.kinds.gbdt import fit_gbdt
    from tests.unit.test_peer_onnx import categorical_data

    train, val = categorical_data(2000, 1), categorical_data(1000, 2)
    stats = train["stats"]
    categorical = fit_gbdt((stats.codes(train["features"]), train["labels"]),
                           (stats.codes(val["features"]), val["labels"]),
                           GBDT, 0, categorical=2)
    used = set()
    for fitted in [*fits.values(), categorical]:
        with zipfile.ZipFile(io.BytesIO(sio.dumps(fitted.model))) as archive:
            schema = json.loads(archive.read("schema.json"))
        stack = [schema]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                if "__loader__" in node:
                    used.add((node["__module__"], node["__class__"], node["__loader__"]))
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    assert used == set(trusted_nodes())


UNTRUSTED = {
    # name: (object to dump, a word the message must name)
    "another_estimator": (lambda: DummyClassifier(strategy="prior").fit(np.eye(4), [0, 1, 0, 1]),
                          "sklearn.dummy.DummyClassifier"),
    "tree_ensemble": (lambda: RandomForestClassifier(n_estimators=2, random_state=0)
                      .fit(np.eye(4), [0, 1, 0, 1]), "RandomForestClassifier"),
    "numpy_function": (lambda: FunctionTransformer(func=np.log1p), "numpy.log1p"),
    "builtin_function": (lambda: {"f": eval}, "builtins.eval"),
}


@pytest.mark.parametrize("case", UNTRUSTED)
def test_a_file_with_an_untrusted_type_is_refused(case, tmp_path) -> None:
    make, word = UNTRUSTED[case]
    path = tmp_path / "gbdt.skops"
    sio.dump(make(), path)
    with pytest.raises(PipelineError) as error:
        load_peer(path, "train_gbdt")
    message = str(error.value)
    assert str(path) in message and word in message and "untrusted" in message
    assert "dvc repro --force train_gbdt" in message and "\n" not in message


@pytest.mark.parametrize("case", ["another_estimator", "numpy_function"])
def test_skops_alone_would_trust_them(case, tmp_path) -> None:
    """Why load_peer audits the file itself: skops trusts most scikit-learn and numpy types."""
    path = tmp_path / "other.skops"
    sio.dump(UNTRUSTED[case][0](), path)
    assert sio.get_untrusted_types(file=path) == []


def test_save_peer_refuses_a_model_it_could_not_load(tmp_path) -> None:
    path = tmp_path / "forest.skops"
    with pytest.raises(PipelineError, match="RandomForestClassifier"):
        save_peer(UNTRUSTED["tree_ensemble"][0](), path)
    assert not path.exists()


def _zip_without_schema() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("other.json", "{}")
    return buffer.getvalue()


def _truncated(fits) -> bytes:
    data = sio.dumps(fits["logreg"].model)
    return data[: len(data) // 2]


@pytest.mark.parametrize("content", [
    lambda fits: b"",
    lambda fits: b"<html>502 Bad Gateway</html>",
    _truncated,
    lambda fits: _zip_without_schema(),
    lambda fits: sio.dumps(np.arange(3.0)),  # trusted types, but not a model
], ids=["empty", "html", "truncated", "no_schema", "an_array"])
def test_a_damaged_file_is_one_clear_error(content, fits, tmp_path) -> None:
    path = tmp_path / "logreg.skops"
    path.write_bytes(content(fits))
    with pytest.raises(PipelineError) as error:
        load_peer(path, "train_logreg")
    message = str(error.value)
    assert message.startswith(str(path)) and "train_logreg" in message and "\n" not in message


def test_a_missing_file_names_the_stage(tmp_path) -> None:
    with pytest.raises(PipelineError, match="not found; run `dvc repro train_logreg`"):
        load_peer(tmp_path / "logreg.skops", "train_logreg")


def test_peer_scores_checks_the_feature_count(fits, splits) -> None:
    with pytest.raises(PipelineError, match=r"\(rows, 29\)"):
        peer_scores(fits["logreg"].model, splits["test"][0][:, :28])


# === tampered files: trusted types, hostile values ===========================================

def _tampered(fits, name: str, change) -> bytes:
    """A copy of a fitted peer with `change` applied to it, saved as skops saves it."""
    import copy

    model = copy.deepcopy(fits[name].model)
    change(model)
    return sio.dumps(model)


def _backwards_child(model) -> None:
    nodes = model._predictors[0][0].nodes
    inner = int(np.flatnonzero(nodes["is_leaf"] == 0)[0])
    nodes["left"][inner] = inner  # a loop: scoring would never leave this node


def _zip_bomb() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("schema.json", b" " * (300 << 20))  # 300 MB unpacked, ~300 KB packed
    return buffer.getvalue()


TAMPERED = {
    "coef-wrong-shape": (lambda fits: _tampered(
        fits, "logreg", lambda m: setattr(m, "coef_", np.zeros((1, 3)))), "coef_ is float64"),
    "coef-nan": (lambda fits: _tampered(
        fits, "logreg", lambda m: m.coef_.__setitem__((0, 0), np.nan)), "coef_ holds NaN"),
    "coef-strings": (lambda fits: _tampered(
        fits, "logreg", lambda m: setattr(m, "coef_", np.array([["x"] * 29]))), "coef_ is <U1"),
    "intercept-inf": (lambda fits: _tampered(
        fits, "logreg", lambda m: setattr(m, "intercept_", np.array([np.inf]))),
        "intercept_ holds NaN or infinite"),
    "three-classes": (lambda fits: _tampered(
        fits, "logreg", lambda m: setattr(m, "classes_", np.array([0, 1, 2]))),
        "its classes are"),
    "30-features": (lambda fits: _tampered(
        fits, "logreg", lambda m: setattr(m, "n_features_in_", 5000)),
        "it takes 5000 features, not 1 to 1,000"),
    "tree-loop": (lambda fits: _tampered(fits, "gbdt", _backwards_child),
                  "tree 0: child or feature indices out of range"),
    "tree-feature-99": (lambda fits: _tampered(fits, "gbdt", lambda m: m._predictors[0][0].nodes[
        "feature_idx"].__setitem__(0, 99)), "tree 0: child or feature indices"),
    "zip-bomb": (lambda fits: _zip_bomb(), "unpacks to 314,572,800 bytes"),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
def test_a_tampered_peer_is_one_line_before_it_scores(case, fits, tmp_path) -> None:
    make, fragment = TAMPERED[case]
    path = tmp_path / "peer.skops"
    path.write_bytes(make(fits))
    with pytest.raises(PipelineError) as error:
        load_peer(path, "train_gbdt")
    message = str(error.value)
    assert message.startswith(f"{path}: ") and fragment in message, message
    assert "\n" not in message and len(message) < 400 and "train_gbdt" in message
