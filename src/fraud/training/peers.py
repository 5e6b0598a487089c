"""The scikit-learn peers of the Keras models: plain logistic regression and gradient-boosted
trees, trained on the pipeline's scaled train split and tuned on its validation split.

Why: a fraud team's first question is whether the tutorial's network beats the standard
baselines on this data. To compare fairly, the peers get what the network gets: the same
scaled arrays, and choices made on validation (C for logistic regression; early stopping,
best iteration kept, for the trees, as Keras restores its best epoch). No TensorFlow here.

Models are saved with skops, not pickle. skops trusts every scikit-learn and numpy type by
default, far more than these two models need; `load_peer` reads the file's type list first
and refuses anything outside `TRUSTED_TYPES`.
"""

from __future__ import annotations

import io
import json
import logging
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from ..declaration import MAX_INPUTS
from ..errors import PipelineError, printable
from ..params import GbdtParams, LogregParams, Params

log = logging.getLogger(__name__)

# The trees fit and predict on one OpenMP thread. HistGradientBoostingClassifier opens many
# short parallel regions per iteration; on a 2-core machine shared with other processes its
# threads wait on each other and the fit ran an order of magnitude slower than on one thread
# (bench figures in the closing note of issue 10). Same trees either way.
GBDT_THREADS = 1

PeerModel = LogisticRegression | HistGradientBoostingClassifier

# Every (module, class, skops loader) a saved peer holds, checked with scikit-learn 1.9 /
# skops 0.16. Anything else (another estimator, a function, a numpy ufunc) is refused, even
# where skops would trust it.
TRUSTED_NODES: frozenset[tuple[str, str, str]] = frozenset({
    ("builtins", "dict", "DictNode"),
    ("builtins", "list", "ListNode"),
    ("builtins", "tuple", "TupleNode"),
    ("builtins", "str", "JsonNode"),     # every JSON scalar (numbers, strings, null)
    ("builtins", "str", "TypeNode"),     # the type of dict keys
    ("numpy", "ndarray", "NdArrayNode"),  # loaded with allow_pickle=False
    ("numpy", "uint64", "NdArrayNode"),
    ("numpy.random._generator", "Generator", "RandomGeneratorNode"),
    ("sklearn.linear_model._logistic", "LogisticRegression", "ObjectNode"),
    ("sklearn.ensemble._hist_gradient_boosting.gradient_boosting",
     "HistGradientBoostingClassifier", "ObjectNode"),
    ("sklearn.ensemble._hist_gradient_boosting.binning", "_BinMapper", "ObjectNode"),
    ("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor", "ObjectNode"),
    ("sklearn.preprocessing._label", "LabelEncoder", "ObjectNode"),
    ("sklearn._loss.loss", "HalfBinomialLoss", "ObjectNode"),
    ("sklearn._loss._loss", "CyHalfBinomialLoss", "LossNode"),
    ("sklearn._loss.link", "LogitLink", "ObjectNode"),
    ("sklearn._loss.link", "Interval", "ObjectNode"),
})
TRUSTED_TYPES: tuple[str, ...] = tuple(sorted({f"{module}.{name}"
                                               for module, name, _ in TRUSTED_NODES}))


@dataclass(frozen=True)
class PeerFit:
    """A fitted peer and what its training chose, for metrics/val/<model>.json."""
    model: PeerModel
    summary: dict[str, Any]


def _check(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    features = np.asarray(features)
    labels = np.asarray(labels).reshape(-1)
    if features.ndim != 2:
        raise PipelineError(f"peer: features must be a 2-D array, got shape {features.shape}")
    if len(features) != len(labels):
        raise PipelineError(f"peer: {len(features):,} feature rows but {len(labels):,} labels")
    if len(labels) == 0:
        raise PipelineError("peer: no rows")
    if not np.all(np.isfinite(features)):
        raise PipelineError("peer: features hold NaN or infinite values")
    if not np.isin(labels, (0, 1)).all():
        raise PipelineError("peer: labels must be 0 or 1")
    return features, labels


def _check_pair(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]
                ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    train, val = _check(*train), _check(*val)
    for name, (_, labels) in (("training", train), ("validation", val)):
        if len(np.unique(labels)) < 2:
            raise PipelineError(f"peer: the {name} labels hold a single class; tuning on "
                                "validation needs frauds and non-frauds in both splits")
    if train[0].shape[1] != val[0].shape[1]:
        raise PipelineError(f"peer: validation has {val[0].shape[1]} features, training "
                            f"{train[0].shape[1]}")
    return train, val


def _val_ap(model: PeerModel, val: tuple[np.ndarray, np.ndarray]) -> float:
    return float(average_precision_score(val[1], peer_scores(model, val[0])))


def fit_logreg(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
               params: LogregParams, seed: int) -> PeerFit:
    """One LogisticRegression per C of the grid, fitted on train; the best validation AP wins.

    Ties go to the smaller C (stronger regularisation). lbfgs is deterministic; `seed` is
    passed as random_state all the same.
    """
    train, val = _check_pair(train, val)
    start = time.perf_counter()
    best: tuple[float, float, LogisticRegression] | None = None
    scores = []
    for c in sorted(params.c_grid):
        model = LogisticRegression(
            C=c, max_iter=params.max_iter, random_state=seed,
            class_weight=None if params.class_weight == "none" else params.class_weight)
        model.fit(*train)
        score = _val_ap(model, val)
        scores.append(score)
        log.info("logreg C=%g: val AP %.4f (%d lbfgs iterations)", c, score, model.n_iter_[0])
        if int(model.n_iter_[0]) >= params.max_iter:
            log.warning("logreg C=%g did not converge in logreg.max_iter = %d iterations",
                        c, params.max_iter)
        if best is None or score > best[0]:
            best = (score, c, model)
    assert best is not None  # the grid is never empty (params.py)
    score, c, model = best
    return PeerFit(model, {
        "model": "logreg", "c": c, "c_grid": sorted(params.c_grid), "grid_val_ap": scores,
        "class_weight": params.class_weight, "n_iter": int(model.n_iter_[0]),
        "max_iter": params.max_iter, "val_ap": score,
        "fit_seconds": round(time.perf_counter() - start, 3)})


def _gbdt(params: GbdtParams, seed: int, max_iter: int, early_stopping: bool
          ) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(
        learning_rate=params.learning_rate, l2_regularization=params.l2_regularization,
        max_iter=max_iter, max_leaf_nodes=params.max_leaf_nodes,
        min_samples_leaf=params.min_samples_leaf, early_stopping=early_stopping,
        validation_fraction=None, n_iter_no_change=params.n_iter_no_change,
        scoring=params.scoring, random_state=seed)


def fit_gbdt(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
             params: GbdtParams, seed: int) -> PeerFit:
    """HistGradientBoostingClassifier, early-stopped on OUR validation split, best kept.

    scikit-learn stops `n_iter_no_change` iterations after the best validation score and keeps
    those extra trees; Keras restores its best epoch. Boosting is sequential and the fit
    deterministic given `seed`, so the first `best` trees of the early-stopped fit are the
    trees a fit with `max_iter = best` grows (a test checks it tree by tree): the model keeps
    those, as if refitted without early stopping (a model skops can save: the early-stopping
    scorer cannot be), without growing them a second time (~40 % of the stage's time).
    """
    train, val = _check_pair(train, val)
    start = time.perf_counter()
    with threadpool_limits(GBDT_THREADS, user_api="openmp"):
        search = _gbdt(params, seed, params.max_iter, early_stopping=True)
        search.fit(*train, X_val=val[0], y_val=val[1])
    # validation_score_[i]: the score after i iterations (higher is better, loss negated).
    best_iter = max(1, int(np.argmax(search.validation_score_)))
    iterations_run = int(search.n_iter_)
    model = first_iterations(search, best_iter)
    seconds = time.perf_counter() - start
    score = _val_ap(model, val)
    log.info("gbdt: %d iterations run, best %d by validation %s; val AP %.4f (%.1f s)",
             iterations_run, best_iter, params.scoring, score, seconds)
    return PeerFit(model, {
        "model": "gbdt", "scoring": params.scoring, "iterations_run": iterations_run,
        "n_iter": best_iter, "max_iter": params.max_iter,
        "stopped_early": bool(iterations_run < params.max_iter), "val_ap": score,
        "fit_seconds": round(seconds, 3)})


def first_iterations(search: HistGradientBoostingClassifier, iterations: int
                     ) -> HistGradientBoostingClassifier:
    """The early-stopped `search` cut to its first `iterations` trees and left as a fit with
    `max_iter = iterations` and no early stopping leaves a model: same params, no scorer,
    no per-iteration scores. Changes `search` in place and returns it."""
    if not 1 <= iterations <= search.n_iter_:
        raise PipelineError(f"gbdt: cannot keep {iterations} of {search.n_iter_} iterations")
    search.set_params(max_iter=iterations, early_stopping=False)
    search._predictors = search._predictors[:iterations]
    search._scorer = None
    search._use_validation_data = False
    search.do_early_stopping_ = False
    search.train_score_ = np.asarray([])
    search.validation_score_ = np.asarray([])
    # A bound method scikit-learn's scoring left on the instance (_patch_raw_predict).
    search.__dict__.pop("_raw_predict", None)
    return search


def fit_peer(name: str, train: tuple[np.ndarray, np.ndarray],
             val: tuple[np.ndarray, np.ndarray], params: Params) -> PeerFit:
    """The peer `name` (one of params.PEERS) with its own params section and `seed`."""
    if name == "logreg":
        return fit_logreg(train, val, params.logreg, params.seed)
    if name == "gbdt":
        return fit_gbdt(train, val, params.gbdt, params.seed)
    raise PipelineError(f"unknown peer model {name!r}: expected logreg or gbdt")


def _peer_features(model: PeerModel, features: np.ndarray) -> np.ndarray:
    features = np.asarray(features)
    expected = int(model.n_features_in_)
    if features.ndim != 2 or features.shape[1] != expected:
        raise PipelineError(f"peer: expected a (rows, {expected}) feature array, got shape "
                            f"{features.shape}")
    return features


def peer_scores(model: PeerModel, features: np.ndarray) -> np.ndarray:
    """Fraud probabilities (float64, one per row) of a peer on scaled features."""
    features = _peer_features(model, features)
    with threadpool_limits(GBDT_THREADS, user_api="openmp"):
        probabilities = model.predict_proba(features)[:, 1]
    return np.ascontiguousarray(probabilities, dtype=np.float64)


def peer_logits(model: PeerModel, features: np.ndarray) -> np.ndarray:
    """The logit of a peer (float64, one per row): `decision_function`, of which
    predict_proba is the sigmoid. Calibration works on it."""
    features = _peer_features(model, features)
    with threadpool_limits(GBDT_THREADS, user_api="openmp"):
        logits = model.decision_function(features)
    return np.ascontiguousarray(logits, dtype=np.float64).reshape(-1)


def save_peer(model: PeerModel, path: str | Path) -> None:
    """skops, no pickle, byte for byte the same for the same model; refuses to write what
    `load_peer` would refuse to read."""
    import skops.io as sio

    data = _canonical_skops(sio.dumps(model))
    untrusted = _untrusted_nodes(data)
    if untrusted:
        raise PipelineError(f"{path}: the model holds {', '.join(untrusted)}, outside the "
                            "trusted types of src/fraud/training/peers.py; not saved")
    Path(path).write_bytes(data)


_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def _canonical_skops(data: bytes) -> bytes:
    """The same skops file with ids numbered in order of appearance and fixed zip timestamps.

    skops names nodes and array files after `id()` of the objects and stamps each zip entry
    with the time of saving, so saving the same model twice gives different bytes. Canonical
    bytes let DVC see an unchanged model (and skip the stages that read it) when a rerun
    changes nothing. Shared objects keep a shared id, so loading is unaffected.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
        arrays = {name: archive.read(name) for name in archive.namelist()
                  if name != "schema.json"}
    ids: dict[Any, int] = {}
    files: dict[str, str] = {}
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__id__" in node:
                node["__id__"] = ids.setdefault(node["__id__"], len(ids))
            if node.get("file") in arrays:
                node["file"] = files.setdefault(node["file"], f"{len(files)}.npy")
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    if set(files) != set(arrays):
        raise PipelineError("skops file: an array file is not referenced by the schema")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for old, new in files.items():
            archive.writestr(zipfile.ZipInfo(new, date_time=_ZIP_EPOCH), arrays[old])
        archive.writestr(zipfile.ZipInfo("schema.json", date_time=_ZIP_EPOCH),
                         json.dumps(schema, indent=2))
    return buffer.getvalue()


def _schema_nodes(node: Any, found: set[tuple[str, str, str]]) -> None:
    if isinstance(node, dict):
        if "__loader__" in node:
            found.add((str(node.get("__module__")), str(node.get("__class__")),
                       str(node["__loader__"])))
        for value in node.values():
            _schema_nodes(value, found)
    elif isinstance(node, list):
        for value in node:
            _schema_nodes(value, found)


def _untrusted_nodes(data: bytes) -> list[str]:
    """The types in a skops file outside TRUSTED_NODES, as `module.name (loader)`."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[tuple[str, str, str]] = set()
    _schema_nodes(schema, found)
    return sorted(f"{module}.{name} ({loader})"
                  for module, name, loader in found - TRUSTED_NODES)


def load_peer(path: str | Path, stage_hint: str) -> PeerModel:
    """A peer saved by `save_peer`, after checking every type in it against TRUSTED_NODES.

    `stage_hint` names the stage that writes the file (e.g. train_gbdt), for the messages.
    """
    import skops.io as sio

    path = Path(path)
    if not path.is_file():
        raise PipelineError(f"{path}: not found; run `dvc repro {stage_hint}` first")
    fix = f"run `dvc repro --force {stage_hint}` to rebuild it"
    data = _bounded_read(path, fix)
    try:
        untrusted = _untrusted_nodes(data)
    except (zipfile.BadZipFile, KeyError, ValueError, RecursionError) as error:
        raise PipelineError(f"{path}: not a readable skops file ({type(error).__name__}); "
                            f"run `dvc repro --force {stage_hint}` to rebuild it") from None
    if untrusted:
        raise PipelineError(
            f"{path}: holds untrusted type(s) {', '.join(untrusted)}; a peer model holds only "
            "LogisticRegression or HistGradientBoostingClassifier and their parts. Not loaded: "
            f"rebuild it with `dvc repro --force {stage_hint}`, and do not load files of "
            "unknown origin")
    try:
        model = sio.loads(data, trusted=list(TRUSTED_TYPES))
    except Exception as error:
        raise PipelineError(f"{path}: cannot load ({type(error).__name__}: {error}); run "
                            f"`dvc repro --force {stage_hint}` to rebuild it"
                            .replace("\n", " ")) from None
    if not isinstance(model, (LogisticRegression, HistGradientBoostingClassifier)) \
            or not hasattr(model, "n_features_in_"):
        raise PipelineError(f"{path}: holds a {type(model).__name__}, not a fitted peer model; "
                            f"run `dvc repro --force {stage_hint}` to rebuild it")
    problem = _fitted_problem(model)
    if problem:
        raise PipelineError(f"{path}: {problem}; not loaded: {fix}")
    return model


# A saved peer is ~1 KB (logistic regression) to ~1 MB (a thousand trees); a file or an
# unpacked size far beyond is not one, and a 3 MB zip can unpack to gigabytes.
MAX_PEER_BYTES = 64 << 20
MAX_PEER_UNPACKED_BYTES = 256 << 20


def _bounded_read(path: Path, fix: str) -> bytes:
    """The file's bytes, once its size and its zip entries' declared sizes are in bounds."""
    size = path.stat().st_size
    if size > MAX_PEER_BYTES:
        raise PipelineError(f"{path}: {size:,} bytes, over the {MAX_PEER_BYTES:,} a peer model "
                            f"may have; {fix}")
    data = path.read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            unpacked = sum(entry.file_size for entry in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise PipelineError(f"{path}: not a readable skops file ({type(error).__name__}); "
                            f"{fix}") from None
    if unpacked > MAX_PEER_UNPACKED_BYTES:
        raise PipelineError(f"{path}: unpacks to {unpacked:,} bytes, over the "
                            f"{MAX_PEER_UNPACKED_BYTES:,} a peer model may have; {fix}")
    return data


def _finite_floats(name: str, array: Any, shape: tuple[int, ...] | None) -> str | None:
    array = np.asarray(array)
    if array.dtype.kind != "f" or (shape is not None and array.shape != shape):
        return f"{name} is {array.dtype} of shape {array.shape}, expected float of shape {shape}"
    return None if np.isfinite(array).all() else f"{name} holds NaN or infinite values"


def _fitted_problem(model: PeerModel) -> str | None:
    """What is wrong with a loaded peer's fitted state, or None. skops checks types, not
    values: a tampered file can hold a coef_ of the wrong shape, NaN or strings (a crash at
    scoring), or trees whose child indices point backwards (scoring never ends)."""
    features = model.n_features_in_
    if not isinstance(features, int) or not 1 <= features <= MAX_INPUTS:
        return f"it takes {printable(features)} features, not 1 to {MAX_INPUTS:,}"
    if list(np.asarray(model.classes_).tolist()) != [0, 1]:
        return f"its classes are {printable(model.classes_)}, not [0, 1]"
    if isinstance(model, LogisticRegression):
        return (_finite_floats("coef_", model.coef_, (1, features))
                or _finite_floats("intercept_", model.intercept_, (1,)))
    problem = _finite_floats("the baseline prediction", model._baseline_prediction, None)
    for number, (predictor,) in enumerate(model._predictors):
        nodes = predictor.nodes
        if problem or nodes.dtype != PREDICTOR_RECORD_DTYPE or not len(nodes):
            return problem or f"tree {number}: its nodes are not scikit-learn's tree records"
        inner = np.flatnonzero(nodes["is_leaf"] == 0)
        order = np.arange(len(nodes))[inner]
        if ((nodes["left"][inner] <= order) | (nodes["right"][inner] <= order)
                | (nodes["left"][inner] >= len(nodes)) | (nodes["right"][inner] >= len(nodes))
                | (nodes["feature_idx"][inner] < 0)
                | (nodes["feature_idx"][inner] >= features)).any() \
                or not np.isfinite(nodes["value"]).all() \
                or not np.isfinite(nodes["num_threshold"][inner]).all():
            return f"tree {number}: child or feature indices out of range, or values not finite"
    return problem
