"""Reason codes: which raw columns pushed a row's score up, in the model's logit (log-odds).

Every explainer returns `Attributions`: per row, one contribution per raw input column
(the detector's inputs, in order) and a base value, with

    base + sum(contributions) == the model's logit        (to float64 rounding, ~1e-12)

Calibration maps the logit monotonically to the shipped probability, so reasons are stated
for the logit: they rank and sign the same way for the calibrated score.

The baseline is the training split's mean of each model feature (the scaler's `mean`): the
standardised point 0, i.e. x_j = mean_j and amount = exp(mean of log(amount + eps)) - eps.

- Networks (Dense(16, relu) → Dense(1)): integrated gradients, computed exactly rather than by
  a Riemann sum. The path is the straight line from the baseline to the row in the
  standardised space BEFORE clipping (the raw columns, the amount on the log scale the model
  reads). Plain gradients are zero wherever a feature is clipped at ±scale.clip, as 97 % of
  flagged frauds have at least one feature; the path starts inside the clip range, so a
  clipped feature still gets the credit for the stretch where it moved the score. Along the
  path the network is piecewise linear (kinks where a feature reaches ±clip or a hidden unit
  changes sign), so the integral is the sum over the linear pieces of (piece length ×
  gradient at its midpoint): exact, hence complete. The network is evaluated in float64 from
  the float32 weights; the ONNX file computes in float32, so its probability's logit differs
  from this one by float32 rounding (~1e-6 relative).
- Logistic regression: the closed form coef_j × (z_j - 0) on the scaled features z (as the
  model reads them: float32, widened), base = intercept; z_j belongs to raw column j.
- Gradient-boosted trees from the ONNX file (`BaselineTreeExplainer`): exact Shapley values
  of the trees' logit against the same baseline point, v(S) = f(x_S, baseline_rest) (shap's
  "interventional" TreeSHAP with that one background row), from the TreeEnsemble's arrays
  alone; base = the logit at the baseline.
- The fitted scikit-learn HistGradientBoostingClassifier (`TreeExplainer`): exact
  path-dependent TreeSHAP (Lundberg et al. 2018, Algorithm 2; shap's default for trees),
  vectorised over rows; base = the trees' training-count-weighted mean plus the model's
  baseline. It needs the node counts, which the ONNX file does not carry.

Why not the `shap` package: installing it adds ~213 MB (llvmlite 173 MB, numba 35 MB, shap
4 MB) and `import shap` takes ~4 s of CPU and ~320 MB of memory, more than `predict` spends
scoring the whole real file; these ~550 lines of numpy need neither.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..core.declaration import CREDIT_CARD_LAYOUT, codes_of_one_hot, one_hot
from ..errors import PipelineError
from ..kinds.registry import all_kinds
from .contract import NETWORK_INPUT, ScalerStats, read_detector_metadata

# Rows explained at a time by the network explainer: each row holds ~1,000 path pieces of 29
# features on the Credit Card Fraud data (~0.25 MB per array), so 32 rows keep the working
# set near 40 MB.
IG_BLOCK_ROWS = 32
REASON = "reason"
CONTRIBUTION = "contribution"
# 0! … 170!: the Shapley weights of coalitions of up to 170 columns (171! overflows float64;
# a coalition holds the distinct columns split on along one path of one tree).
_FACTORIALS = np.array([math.factorial(i) for i in range(171)], np.float64)


@dataclass(frozen=True)
class Attributions:
    contributions: np.ndarray  # (rows, inputs) float64, logit units, the inputs' order
    base: float                # the logit at the baseline (same for every row)
    logit: np.ndarray          # (rows,) the model's logit, as the explainer computes it


class Explainer(Protocol):
    def __call__(self, raw: np.ndarray) -> Attributions: ...


@dataclass(frozen=True)
class Preprocess:
    """The detector's preprocessing (contract.py): raw columns → standardised → clipped."""
    mean: np.ndarray
    scale: np.ndarray
    clip: float
    eps: float
    logged: bool = True  # the last input is the amount, read as log(amount + eps)
    categories: tuple[tuple[str, tuple[str, ...]], ...] = ()  # as ScalerStats'

    @classmethod
    def of(cls, stats: ScalerStats, eps: float) -> Preprocess:
        return cls(stats.mean, stats.scale, stats.clip, eps, stats.log_input is not None,
                   stats.categories)

    @property
    def width(self) -> int:
        """The model's features: the numeric ones, then the one-hot blocks."""
        return len(self.mean) + sum(len(levels) for _, levels in self.categories)

    def split(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """A detector's raw rows → (numbers float64, categorical text or None): with
        categorical columns, rows are an object array whose text columns come last."""
        if not self.categories:
            return np.asarray(raw, dtype=np.float64), None
        return np.asarray(raw[:, :len(self.mean)], dtype=np.float64), raw[:, len(self.mean):]

    def model_space(self, raw: np.ndarray) -> np.ndarray:
        """The network's space before clipping: standardised numbers, then one-hot blocks
        (0/1: inside any clip >= 1, so clipping leaves them as they are)."""
        numbers, text = self.split(raw)
        standardised = self.standardise(numbers)
        return standardised if text is None else \
            np.concatenate([standardised, self.one_hot(text)], axis=1)

    def grouped(self, contributions: np.ndarray) -> np.ndarray:
        """Per-feature contributions → per raw input column: a categorical column's one-hot
        block (or its one code column) summed, so it is one reason under its own name."""
        n = len(self.mean)
        if not self.categories or contributions.shape[1] == n + len(self.categories):
            return contributions
        parts, start = [contributions[:, :n]], n
        for _, levels in self.categories:
            parts.append(contributions[:, start:start + len(levels)].sum(axis=1,
                                                                         keepdims=True))
            start += len(levels)
        return np.concatenate(parts, axis=1)

    def codes(self, features: np.ndarray) -> np.ndarray:
        """The one-hot blocks of `features` as one level-code column each (NaN: none), what
        gbdt's native categorical splits read (contract.ScalerStats.codes)."""
        n, parts = len(self.mean), [features[:, :len(self.mean)]]
        for _, levels in self.categories:
            parts.append(codes_of_one_hot(features[:, n:n + len(levels)])[:, None])
            n += len(levels)
        return np.concatenate(parts, axis=1)

    def standardise(self, raw: np.ndarray) -> np.ndarray:
        """(rows, numeric inputs) raw → standardised features before clipping, float64."""
        raw = np.asarray(raw, dtype=np.float64)
        if self.logged:
            n_plain = len(self.mean) - 1
            raw = np.concatenate([raw[:, :n_plain], np.log(raw[:, n_plain:] + self.eps)], axis=1)
        return (raw - self.mean) / self.scale

    def baseline_raw(self) -> np.ndarray:
        """The baseline as a raw row (1, inputs): the training means of the model's numeric
        features, and no known level of each categorical column (empty text)."""
        numbers = self.mean[None, :].copy() if not self.logged else \
            np.append(self.mean[:-1], np.exp(self.mean[-1]) - self.eps)[None, :]
        if not self.categories:
            return numbers
        row = np.empty((1, len(self.mean) + len(self.categories)), dtype=object)
        row[0, :len(self.mean)], row[0, len(self.mean):] = numbers[0], ""
        return row

    def features(self, raw: np.ndarray, text: np.ndarray | None = None) -> np.ndarray:
        """What the peers read: clipped, stored as float32, widened (peer_onnx.py); then the
        categorical columns' one-hot blocks, from `text` (rows, categorical columns)."""
        if text is None and self.categories:
            raw, text = self.split(raw)
        clipped = np.clip(self.standardise(raw), -self.clip, self.clip)
        numeric = clipped.astype(np.float32).astype(np.float64)
        if not self.categories:
            return numeric
        return np.concatenate([numeric, self.one_hot(text)], axis=1)

    def one_hot(self, text: np.ndarray | None) -> np.ndarray:
        """The categorical columns' one-hot blocks (float64 0/1): an unseen category, or a
        missing one, is none of the known levels (a row of zeros)."""
        if text is None or np.shape(text) != (np.shape(text)[0], len(self.categories)):
            raise PipelineError(f"expected the text of {len(self.categories)} categorical "
                                f"column(s), got {None if text is None else np.shape(text)}")
        blocks = [one_hot(text[:, i], levels) for i, (_, levels) in enumerate(self.categories)]
        return np.concatenate(blocks, axis=1).astype(np.float64)


# --- networks: exact integrated gradients ----------------------------------------------------

@dataclass(frozen=True)
class NetworkExplainer:
    preprocess: Preprocess
    hidden_weights: np.ndarray  # (29, units)
    hidden_bias: np.ndarray     # (units,)
    output_weights: np.ndarray  # (units,)
    output_bias: float

    def logit_of_standardised(self, standardised: np.ndarray) -> np.ndarray:
        clipped = np.clip(standardised, -self.preprocess.clip, self.preprocess.clip)
        hidden = np.maximum(clipped @ self.hidden_weights + self.hidden_bias, 0.0)
        return hidden @ self.output_weights + self.output_bias

    def __call__(self, raw: np.ndarray) -> Attributions:
        standardised = self.preprocess.model_space(raw)
        parts = [self.integrated_gradients(standardised[start:start + IG_BLOCK_ROWS])
                 for start in range(0, len(standardised), IG_BLOCK_ROWS)]
        contributions = (np.concatenate(parts) if parts
                         else np.empty((0, self.preprocess.width)))
        base = float(self.logit_of_standardised(np.zeros((1, self.preprocess.width)))[0])
        return Attributions(self.preprocess.grouped(contributions), base,
                            self.logit_of_standardised(standardised))

    def _hidden(self, points: np.ndarray) -> np.ndarray:
        """Hidden pre-activations at points (..., inputs) of the standardised space."""
        clipped = np.clip(points, -self.preprocess.clip, self.preprocess.clip)
        return clipped @ self.hidden_weights + self.hidden_bias

    def _kinks(self, ends: np.ndarray) -> np.ndarray:
        """Sorted path positions t in [0, 1] between which the logit is linear in t.

        First where a feature crosses ±clip; between those every hidden pre-activation is
        linear in t, so each unit changes sign at most once per piece, where the linear
        interpolation of its values at the piece's ends is zero."""
        clip = self.preprocess.clip
        with np.errstate(divide="ignore", invalid="ignore"):
            crossings = np.concatenate([clip / ends, -clip / ends], axis=1)
        crossings = np.where((crossings > 0) & (crossings < 1), crossings, 1.0)
        rows = len(ends)
        pieces = np.sort(np.concatenate([np.zeros((rows, 1)), crossings, np.ones((rows, 1))],
                                        axis=1), axis=1)
        pieces = pieces[:, :int((pieces < 1).sum(axis=1).max()) + 1]
        hidden = self._hidden(pieces[:, :, None] * ends[:, None, :])
        before, after = hidden[:, :-1], hidden[:, 1:]
        with np.errstate(divide="ignore", invalid="ignore"):
            at = pieces[:, :-1, None] + (np.diff(pieces, axis=1)[:, :, None]
                                         * before / (before - after))
        signs = np.where((before * after < 0) & (at > 0) & (at < 1), at, 1.0)
        kinks = np.sort(np.concatenate([pieces, signs.reshape(rows, -1)], axis=1), axis=1)
        return kinks[:, :int((kinks < 1).sum(axis=1).max()) + 1]

    def integrated_gradients(self, standardised: np.ndarray) -> np.ndarray:
        """Exact IG from the baseline (0) to each row (rows, 29) of the standardised space."""
        if not len(standardised):
            return np.empty((0, standardised.shape[1]))
        kinks = self._kinks(standardised)
        lengths = np.diff(kinks, axis=1)
        middles = (kinks[:, :-1] + kinks[:, 1:]) / 2
        points = middles[:, :, None] * standardised[:, None, :]
        active = self._hidden(points) > 0
        gradient = (active * self.output_weights) @ self.hidden_weights.T
        gradient *= np.abs(points) < self.preprocess.clip
        return standardised * np.einsum("rp,rpf->rf", lengths, gradient)


# --- logistic regression: closed form --------------------------------------------------------

@dataclass(frozen=True)
class LinearExplainer:
    preprocess: Preprocess
    coef: np.ndarray   # (29,) on the scaled features
    intercept: float

    def __call__(self, raw: np.ndarray) -> Attributions:
        features = self.preprocess.features(raw)
        # Baseline: the features' training mean (0), and no known level (0) of a category.
        contributions = self.preprocess.grouped(features * self.coef)
        return Attributions(contributions, self.intercept, features @ self.coef + self.intercept)


# --- gradient-boosted trees: exact path-dependent TreeSHAP ----------------------------------

@dataclass(frozen=True)
class Tree:
    """One regression tree, scikit-learn's HistGradientBoosting `nodes` records as arrays."""
    feature: np.ndarray       # split feature per node
    threshold: np.ndarray     # go left when x <= threshold
    missing_left: np.ndarray  # NaN goes left
    left: np.ndarray
    right: np.ndarray
    is_leaf: np.ndarray
    value: np.ndarray         # leaf values (learning rate applied)
    count: np.ndarray         # training rows through each node: the path's "cover"

    @classmethod
    def from_nodes(cls, nodes: np.ndarray) -> Tree:
        return cls(feature=nodes["feature_idx"].astype(np.int64),
                   threshold=nodes["num_threshold"].astype(np.float64),
                   missing_left=nodes["missing_go_to_left"].astype(bool),
                   left=nodes["left"].astype(np.int64), right=nodes["right"].astype(np.int64),
                   is_leaf=nodes["is_leaf"].astype(bool),
                   value=nodes["value"].astype(np.float64),
                   count=nodes["count"].astype(np.float64))

    def predict(self, x: np.ndarray) -> np.ndarray:
        node = np.zeros(len(x), dtype=np.int64)
        for _ in range(len(self.value)):
            inner = ~self.is_leaf[node]
            if not inner.any():
                break
            rows = np.flatnonzero(inner)
            node[rows] = self._children(x[rows], node[rows])
        return self.value[node]

    def _children(self, x: np.ndarray, node: np.ndarray) -> np.ndarray:
        return np.where(self._goes_left(x, node), self.left[node], self.right[node])

    def _goes_left(self, x: np.ndarray, node: Any) -> np.ndarray:
        values = x[np.arange(len(x)), self.feature[node]]
        return np.where(np.isnan(values), self.missing_left[node], values <= self.threshold[node])

    def expected_value(self) -> float:
        leaves = np.flatnonzero(self.is_leaf)
        return float(self.count[leaves] @ self.value[leaves] / self.count[0])


@dataclass
class _Path:
    """TreeSHAP's unique path: per element a feature, zero and one fractions and a weight;
    one fractions and weights are per row. Updated by replacing arrays, never in place, so a
    shallow copy is a snapshot."""
    features: list[int]
    zeros: list[float]
    ones: list[np.ndarray]
    weights: list[np.ndarray]

    def copy(self) -> _Path:
        return _Path(list(self.features), list(self.zeros), list(self.ones), list(self.weights))

    def extend(self, zero: float, one: np.ndarray, feature: int) -> None:
        depth = len(self.weights)
        self.features.append(feature)
        self.zeros.append(zero)
        self.ones.append(one)
        self.weights.append(np.full_like(one, 1.0 if depth == 0 else 0.0))
        w = self.weights
        for i in range(depth - 1, -1, -1):
            w[i + 1] = w[i + 1] + one * w[i] * (i + 1) / (depth + 1)
            w[i] = zero * w[i] * (depth - i) / (depth + 1)

    def _unwound(self, index: int) -> tuple[list[np.ndarray], np.ndarray]:
        """The weights with element `index` taken out, and their sum (shap's unwind_path)."""
        depth = len(self.weights) - 1
        one, zero = self.ones[index], self.zeros[index]
        has_one = one != 0
        safe_one = np.where(has_one, one, 1.0)
        following = self.weights[depth]
        weights = list(self.weights[:depth])
        for i in range(depth - 1, -1, -1):
            from_one = following * (depth + 1) / ((i + 1) * safe_one)
            from_zero = self.weights[i] * (depth + 1) / (zero * (depth - i))
            weights[i] = np.where(has_one, from_one, from_zero)
            following = self.weights[i] - weights[i] * zero * (depth - i) / (depth + 1)
        return weights, np.sum(weights, axis=0)

    def without(self, index: int) -> _Path:
        weights, _ = self._unwound(index)
        keep = [i for i in range(len(self.features)) if i != index]
        return _Path([self.features[i] for i in keep], [self.zeros[i] for i in keep],
                     [self.ones[i] for i in keep], weights)


def _tree_shap(tree: Tree, x: np.ndarray, phi: np.ndarray) -> None:
    """Adds one tree's exact path-dependent SHAP values for rows x to phi (rows, features)."""

    def recurse(node: int, path: _Path, zero: float, one: np.ndarray, feature: int) -> None:
        path = path.copy()
        path.extend(zero, one, feature)
        if tree.is_leaf[node]:
            for i in range(1, len(path.features)):
                _, total = path._unwound(i)
                phi[:, path.features[i]] += (total * (path.ones[i] - path.zeros[i])
                                             * tree.value[node])
            return
        split = int(tree.feature[node])
        incoming_zero, incoming_one = 1.0, np.ones(len(x))
        if split in path.features[1:]:
            index = path.features.index(split, 1)
            incoming_zero, incoming_one = path.zeros[index], path.ones[index]
            path = path.without(index)
        left = tree._goes_left(x, np.full(len(x), node)).astype(np.float64)
        for child, goes in ((tree.left[node], left), (tree.right[node], 1.0 - left)):
            recurse(int(child), path, incoming_zero * tree.count[child] / tree.count[node],
                    incoming_one * goes, split)

    recurse(0, _Path([], [], [], []), 1.0, np.ones(len(x)), -1)


@dataclass(frozen=True)
class TreeExplainer:
    preprocess: Preprocess | None  # None: called on the scaled features directly
    trees: Sequence[Tree]
    baseline: float                # the model's raw prediction before any tree

    @classmethod
    def from_hist_gbdt(cls, model: Any, preprocess: Preprocess | None) -> TreeExplainer:
        if model.n_trees_per_iteration_ != 1:
            raise PipelineError("explain: expected a binary gbdt (one tree per iteration)")
        trees = [Tree.from_nodes(predictor.nodes) for (predictor,) in model._predictors]
        if any(predictor.nodes["is_categorical"].any() for (predictor,) in model._predictors):
            raise PipelineError("explain: categorical splits are not supported")
        return cls(preprocess, trees, float(np.ravel(model._baseline_prediction)[0]))

    def __call__(self, raw: np.ndarray) -> Attributions:
        x = self.preprocess.features(raw) if self.preprocess else np.asarray(raw, np.float64)
        phi = np.zeros(x.shape)
        logit = np.full(len(x), self.baseline)
        for tree in self.trees:
            _tree_shap(tree, x, phi)
            logit += tree.predict(x)
        base = self.baseline + sum(tree.expected_value() for tree in self.trees)
        return Attributions(phi, base, logit)


# --- tree ensembles from the ONNX file: exact baseline (interventional) TreeSHAP -------------

@dataclass(frozen=True)
class Ensemble:
    """ai.onnx.ml TreeEnsemble's arrays (kinds/gbdt.py writes them): interior nodes go to
    their `true` child when x <= split (or x is NaN and missing_true), ids index interior
    nodes or leaves as the *_leaf flags say."""
    roots: np.ndarray
    feature: np.ndarray
    split: np.ndarray
    true_id: np.ndarray
    true_leaf: np.ndarray
    false_id: np.ndarray
    false_leaf: np.ndarray
    missing_true: np.ndarray
    leaf_weight: np.ndarray
    bias: float
    # A categorical split's codes that go `true` (BRANCH_MEMBER), by node; others: x <= split.
    members: dict[int, np.ndarray] = field(default_factory=dict)

    def goes_true(self, x: np.ndarray, node: int) -> np.ndarray:
        values = x[:, self.feature[node]]
        test = np.isin(values, self.members[node]) if node in self.members \
            else values <= self.split[node]
        return np.where(np.isnan(values), bool(self.missing_true[node]), test)


@dataclass(frozen=True)
class BaselineTreeExplainer:
    """Exact Shapley values of the trees' logit against one reference point, the training
    means (the networks' and the logistic regression's baseline): v(S) = f(x_S, r_rest).

    A leaf that x reaches only when the features A follow x and the features B follow the
    reference contributes, per Shapley's formula, leaf × (|A|-1)!|B|!/(|A|+|B|)! to each
    feature of A and −leaf × |A|!(|B|-1)!/(|A|+|B|)! to each of B (shap's "interventional"
    TreeSHAP with one background row). Needs only the trees, so it works from the ONNX file,
    which lacks the training counts path-dependent TreeSHAP needs."""
    preprocess: Preprocess
    ensemble: Ensemble
    codes: bool = False  # the trees read level codes (native categorical splits)

    def __call__(self, raw: np.ndarray) -> Attributions:
        x = self.preprocess.features(raw)
        reference = self.preprocess.features(self.preprocess.baseline_raw())
        if self.codes:  # one column per categorical input: its contribution, as it is
            x, reference = self.preprocess.codes(x), self.preprocess.codes(reference)
        phi = np.zeros(x.shape)
        logit = np.full(len(x), self.ensemble.bias)
        base = np.full(1, self.ensemble.bias)
        for root in self.ensemble.roots:
            self._walk(int(root), x, phi, logit, reference)
            self._walk(int(root), reference, np.zeros(reference.shape), base, reference)
        return Attributions(phi, float(base[0]), logit)

    def _walk(self, root: int, x: np.ndarray, phi: np.ndarray, logit: np.ndarray,
              reference: np.ndarray) -> None:
        """Adds one tree's value to logit and its Shapley values to phi.

        Depth first; per row: can it reach the node for some coalition, which features must
        follow x (A) and which the reference (B) on the way. Each branch carries only the
        rows that can still reach it (their indices and their A, B): a leaf deep in a tree
        costs what its few rows cost, not what all rows do (the importance stage, real data:
        5.4 -> 1.8 CPU-s, the same bytes out)."""
        e, rows, n = self.ensemble, len(x), x.shape[1]
        stack = [(root, False, np.arange(rows), np.zeros((rows, n), bool),
                  np.zeros((rows, n), bool))]
        while stack:
            node, is_leaf, index, in_a, in_b = stack.pop()
            if is_leaf:
                self._credit(float(e.leaf_weight[node]), index, in_a, in_b, phi, logit)
                continue
            f = int(e.feature[node])
            x_true, r_true = e.goes_true(x[index], node), bool(e.goes_true(reference, node)[0])
            for side, child, leaf in ((True, e.true_id[node], e.true_leaf[node]),
                                      (False, e.false_id[node], e.false_leaf[node])):
                x_side, r_side = x_true == side, r_true == side
                only_x = x_side & (not r_side)  # only x goes this way: f must follow x
                only_r = ~x_side & r_side       # only r goes this way: f must follow r
                still = (x_side | r_side) & ~((in_a[:, f] | only_x) & (in_b[:, f] | only_r))
                if still.any():
                    a, b = in_a[still], in_b[still]
                    a[:, f] |= only_x[still]
                    b[:, f] |= only_r[still]
                    stack.append((int(child), bool(leaf), index[still], a, b))

    @staticmethod
    def _credit(value: float, index: np.ndarray, in_a: np.ndarray, in_b: np.ndarray,
                phi: np.ndarray, logit: np.ndarray) -> None:
        """A leaf's share to the rows `index` (each once) that reach it for some coalition."""
        size_a, size_b = in_a.sum(axis=1), in_b.sum(axis=1)
        logit[index] += np.where(size_b == 0, value, 0.0)
        total = size_a + size_b
        weight_a = _FACTORIALS[np.maximum(size_a - 1, 0)] * _FACTORIALS[size_b] / _FACTORIALS[total]
        weight_b = _FACTORIALS[size_a] * _FACTORIALS[np.maximum(size_b - 1, 0)] / _FACTORIALS[total]
        gain = np.where(size_a > 0, value * weight_a, 0.0)
        loss = np.where(size_b > 0, value * weight_b, 0.0)
        phi[index] += in_a * gain[:, None] - in_b * loss[:, None]


# --- from the shipped ONNX file --------------------------------------------------------------

_NETWORK_OPS = ["MatMul", "Add", "Relu", "MatMul", "Add"]


def _initializers(model: Any) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    return {tensor.name: numpy_helper.to_array(tensor).astype(np.float64)
            for tensor in model.graph.initializer}


def _network_from_graph(model: Any, preprocess: Preprocess, label: str) -> NetworkExplainer:
    """The Dense(relu) → Dense layers after the preprocessing's `features` output."""
    nodes = [node for node in model.graph.node if not node.name.startswith("preprocess/")
             and node.op_type != "Cast"]
    ops = [node.op_type for node in nodes]
    if ops[:len(_NETWORK_OPS)] != _NETWORK_OPS or nodes[0].input[0] != NETWORK_INPUT:
        raise PipelineError(f"{label}: --explain supports the Dense(relu) → Dense network, "
                            f"logistic regression and gbdt; this graph runs {ops}")
    weights = _initializers(model)

    def operand(node: Any) -> np.ndarray:
        (name,) = [name for name in node.input if name in weights]
        return weights[name]

    hidden_w, hidden_b, _, out_w, out_b = (operand(n) if n.op_type != "Relu" else None
                                           for n in nodes[:5])
    return NetworkExplainer(preprocess, hidden_w, hidden_b.reshape(-1), out_w.reshape(-1),
                            float(np.ravel(out_b)[0]))


def _ensemble(node: Any, weights: dict[str, np.ndarray], label: str, bias: str) -> Ensemble:
    """The trees of a kind's TreeEnsemble node (x <= split, summed, no transform), plus the
    constant `bias` (kinds/gbdt.py writes them)."""
    from onnx import helper

    a = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}

    def array(name: str) -> np.ndarray:
        value = a[name]
        if hasattr(value, "dims"):
            from onnx import numpy_helper
            return numpy_helper.to_array(value)
        return np.asarray(value)

    modes = array("nodes_modes")
    if not np.isin(modes, (0, _MEMBER)).all() or a.get("aggregate_function", 1) != 1 \
            or a.get("post_transform", 0) != 0 or bias not in weights:
        raise PipelineError(f"{label}: --explain supports the tree ensemble this project writes "
                            f"(x <= split, summed, plus {bias}); this one differs")
    return Ensemble(roots=array("tree_roots").astype(np.int64),
                    feature=array("nodes_featureids").astype(np.int64),
                    split=array("nodes_splits").astype(np.float64),
                    true_id=array("nodes_truenodeids").astype(np.int64),
                    true_leaf=array("nodes_trueleafs").astype(bool),
                    false_id=array("nodes_falsenodeids").astype(np.int64),
                    false_leaf=array("nodes_falseleafs").astype(bool),
                    missing_true=array("nodes_missing_value_tracks_true").astype(bool),
                    leaf_weight=array("leaf_weights").astype(np.float64),
                    bias=float(np.ravel(weights[bias])[0]),
                    members=_members(modes, array("membership_values")
                                     if "membership_values" in a else np.empty(0)))


_MEMBER = 6  # TreeEnsemble's BRANCH_MEMBER (kinds/gbdt.py)


def _members(modes: np.ndarray, values: np.ndarray) -> dict[int, np.ndarray]:
    """Each BRANCH_MEMBER node's codes: `values` holds them in node order, NaN-delimited."""
    values = np.asarray(values, dtype=np.float64)
    cuts = np.flatnonzero(np.isnan(values))
    sets = np.split(values, cuts + 1)[:len(cuts)]
    nodes = np.flatnonzero(modes == _MEMBER)
    return {int(node): members[~np.isnan(members)] for node, members in zip(nodes, sets,
                                                                             strict=True)}


def explainer_from_onnx(model: Any, label: str) -> Explainer:
    """The explainer of a detector written by this project, from the file alone: the
    preprocessing from its metadata, the weights from its initializers, the method from its
    model's kind (`ModelKind.explanation`; a name no kind has is read from the graph)."""
    info = read_detector_metadata({p.key: p.value for p in model.metadata_props}, label, "export")
    preprocess = Preprocess.of(info.stats(), info.eps)
    trees = [node for node in model.graph.node if node.op_type == "TreeEnsemble"]
    weights = _initializers(model)
    name = info.strategy
    known = {kind.name: kind.explanation for kind in all_kinds()}
    method = known.get(name) or ("trees" if trees else "linear" if f"{name}/coef" in weights
                                 else "network")
    if method == "trees" and trees:
        codes = any(node.name == "preprocess/codes/features" for node in model.graph.node)
        return BaselineTreeExplainer(preprocess, _ensemble(trees[0], weights, label,
                                                           f"{name}/baseline"), codes)
    if method == "linear" and {f"{name}/coef", f"{name}/intercept"} <= set(weights):
        return LinearExplainer(preprocess, weights[f"{name}/coef"].reshape(-1),
                               float(np.ravel(weights[f"{name}/intercept"])[0]))
    return _network_from_graph(model, preprocess, label)


def load_explainer(path: Any) -> Explainer:
    import onnx

    return explainer_from_onnx(onnx.load(str(path)), str(path))


# --- what predict writes, and the global importance -------------------------------------------

def reason_names(k: int) -> list[str]:
    return [name for i in range(1, k + 1) for name in (f"{REASON}_{i}", f"{CONTRIBUTION}_{i}")]


def top_reasons(contributions: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k columns with the largest signed contribution (pushing the logit up
    most), largest first: their indices among the inputs and their contributions."""
    order = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(contributions, order, axis=1)


@dataclass(frozen=True)
class ReasonColumns:
    """predict's extra columns: reason_i, contribution_i for the selected rows (the flagged
    ones, or all with `every_row`), else blank."""
    explainer: Explainer
    k: int
    every_row: bool = False
    columns: Sequence[str] = tuple(CREDIT_CARD_LAYOUT.inputs)  # the detector's, in order

    @property
    def names(self) -> list[str]:
        return reason_names(self.k)

    def __call__(self, raw: np.ndarray, selected: np.ndarray) -> list[np.ndarray]:
        rows = np.arange(len(raw)) if self.every_row else np.flatnonzero(selected)
        columns = [np.full(len(raw), "", dtype=object) for _ in range(2 * self.k)]
        if len(rows):
            order, values = top_reasons(self.explainer(raw[rows]).contributions, self.k)
            names = np.array(list(self.columns), dtype=object)
            for i in range(self.k):
                columns[2 * i][rows] = names[order[:, i]]
                columns[2 * i + 1][rows] = [f"{v:.6g}" for v in values[:, i]]
        return columns


def global_importance(contributions: np.ndarray, labels: np.ndarray,
                      columns: Sequence[str] = CREDIT_CARD_LAYOUT.inputs
                      ) -> dict[str, dict[str, float]]:
    """Mean |contribution| per raw column over all rows and over the frauds (labels == 1),
    in logit units: how much each column moves this model's scores, on average."""
    contributions = np.abs(np.asarray(contributions, dtype=np.float64))
    frauds = np.asarray(labels) == 1
    result = {"all": contributions.mean(axis=0) if len(contributions) else None,
              "frauds": contributions[frauds].mean(axis=0) if frauds.any() else None}
    return {subset: ({} if means is None else dict(zip(columns, map(float, means), strict=True)))
            for subset, means in result.items()}
