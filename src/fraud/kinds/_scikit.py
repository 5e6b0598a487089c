"""What every scikit-learn kind shares: checked arrays, scores and logits, and the skops
file (saved byte for byte the same, loaded only after every type in it is checked).

Models are saved with skops, not pickle. skops trusts every scikit-learn and numpy type by
default, far more than these models need; `load_model` reads the file's type list first and
refuses anything outside `trusted_nodes()`: the nodes below and each kind's `trusted`.
Imported by the kinds' functions only, never at import time (scikit-learn takes ~1 s).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from ..core.declaration import MAX_INPUTS
from ..errors import PipelineError, printable
from .base import SCIKIT
from .registry import family, kind_of_model

# Models fit and predict on one OpenMP thread. HistGradientBoostingClassifier opens many
# short parallel regions per iteration; on a 2-core machine shared with other processes its
# threads wait on each other and the fit ran an order of magnitude slower than on one thread
# (bench figures in the closing note of issue 10). Same trees either way.
THREADS = 1

# The (module, class, skops loader) nodes any saved model holds, checked with scikit-learn
# 1.9 / skops 0.16; each kind adds its own (`ModelKind.trusted`). Anything else (another
# estimator, a function, a numpy ufunc) is refused, even where skops would trust it.
COMMON_NODES: frozenset[tuple[str, str, str]] = frozenset({
    ("builtins", "dict", "DictNode"),
    ("builtins", "list", "ListNode"),
    ("builtins", "str", "JsonNode"),     # every JSON scalar (numbers, strings, null)
    ("builtins", "str", "TypeNode"),     # the type of dict keys
    ("numpy", "ndarray", "NdArrayNode"),  # loaded with allow_pickle=False
})


def trusted_nodes() -> frozenset[tuple[str, str, str]]:
    """COMMON_NODES and every scikit-learn kind's own."""
    return COMMON_NODES.union(*(kind.trusted for kind in family(SCIKIT)))


def _estimator_classes() -> list[tuple[str, str]]:
    return [kind.estimator for kind in family(SCIKIT) if kind.estimator]


def _estimators() -> str:
    """`LogisticRegression or HistGradientBoostingClassifier`: what a saved model may be."""
    return " or ".join(name for _, name in _estimator_classes())


def trusted_types() -> tuple[str, ...]:
    return tuple(sorted({f"{module}.{name}" for module, name, _ in trusted_nodes()}))


def check(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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


def check_pair(train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray]
                ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    train, val = check(*train), check(*val)
    for name, (_, labels) in (("training", train), ("validation", val)):
        if len(np.unique(labels)) < 2:
            raise PipelineError(f"peer: the {name} labels hold a single class; tuning on "
                                "validation needs frauds and non-frauds in both splits")
    if train[0].shape[1] != val[0].shape[1]:
        raise PipelineError(f"peer: validation has {val[0].shape[1]} features, training "
                            f"{train[0].shape[1]}")
    return train, val


def val_ap(model: Any, val: tuple[np.ndarray, np.ndarray]) -> float:
    """The validation average precision of a fitted model, what the kinds tune on."""
    return float(average_precision_score(val[1], scores(model, val[0])))


def _peer_features(model: Any, features: np.ndarray) -> np.ndarray:
    features = np.asarray(features)
    expected = int(model.n_features_in_)
    if features.ndim != 2 or features.shape[1] != expected:
        raise PipelineError(f"peer: expected a (rows, {expected}) feature array, got shape "
                            f"{features.shape}")
    return features


def scores(model: Any, features: np.ndarray) -> np.ndarray:
    """Fraud probabilities (float64, one per row) of a peer on scaled features."""
    features = _peer_features(model, features)
    with threadpool_limits(THREADS, user_api="openmp"):
        probabilities = model.predict_proba(features)[:, 1]
    return np.ascontiguousarray(probabilities, dtype=np.float64)


def logits(model: Any, features: np.ndarray) -> np.ndarray:
    """The logit of a peer (float64, one per row): `decision_function`, of which
    predict_proba is the sigmoid. Calibration works on it."""
    features = _peer_features(model, features)
    with threadpool_limits(THREADS, user_api="openmp"):
        logits = model.decision_function(features)
    return np.ascontiguousarray(logits, dtype=np.float64).reshape(-1)


def save_model(model: Any, path: str | Path) -> None:
    """skops, no pickle, byte for byte the same for the same model; refuses to write what
    `load_model` would refuse to read."""
    import skops.io as sio

    data = _canonical_skops(sio.dumps(model))
    untrusted = _untrusted_nodes(data)
    if untrusted:
        raise PipelineError(f"{path}: the model holds {', '.join(untrusted)}, outside the "
                            "trusted types of its kind (src/fraud/kinds); not saved")
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
    """The types in a skops file outside trusted_nodes(), as `module.name (loader)`."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
    found: set[tuple[str, str, str]] = set()
    _schema_nodes(schema, found)
    return sorted(f"{module}.{name} ({loader})"
                  for module, name, loader in found - trusted_nodes())


def load_model(path: str | Path, stage_hint: str) -> Any:
    """A peer saved by `save_model`, after checking every type in it against trusted_nodes().

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
            f"{_estimators()} and their parts. Not loaded: "
            f"rebuild it with `dvc repro --force {stage_hint}`, and do not load files of "
            "unknown origin")
    try:
        model = sio.loads(data, trusted=list(trusted_types()))
    except Exception as error:
        raise PipelineError(f"{path}: cannot load ({type(error).__name__}: {error}); run "
                            f"`dvc repro --force {stage_hint}` to rebuild it"
                            .replace("\n", " ")) from None
    if (type(model).__module__, type(model).__name__) not in _estimator_classes() \
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


def _fitted_problem(model: Any) -> str | None:
    """What is wrong with a loaded model's fitted state, or None. skops checks types, not
    values: a tampered file can hold a coef_ of the wrong shape, NaN or strings (a crash at
    scoring), or trees whose child indices point backwards (scoring never ends). The shared
    checks here, then the kind's own (`ModelKind.fitted_problem`)."""
    features = model.n_features_in_
    if not isinstance(features, int) or not 1 <= features <= MAX_INPUTS:
        return f"it takes {printable(features)} features, not 1 to {MAX_INPUTS:,}"
    if list(np.asarray(model.classes_).tolist()) != [0, 1]:
        return f"its classes are {printable(model.classes_)}, not [0, 1]"
    problem = kind_of_model(model).fitted_problem
    return problem(model) if problem else None


def finite_floats(name: str, array: Any, shape: tuple[int, ...] | None) -> str | None:
    """None when `array` is finite floats (of `shape`, if given); else what it is."""
    array = np.asarray(array)
    if array.dtype.kind != "f" or (shape is not None and array.shape != shape):
        return f"{name} is {array.dtype} of shape {array.shape}, expected float of shape {shape}"
    return None if np.isfinite(array).all() else f"{name} holds NaN or infinite values"
