"""The detectors' shared ONNX parts: the opset, the batch dimension's name and the raw
columns' preprocessing as float64 ONNX nodes (what the scale stage does, for raw rows). Their
one home: the network's detector (detector.py) and the peers' (peer_onnx.py) both start with
these nodes. onnx and numpy only, so that neither TensorFlow nor scikit-learn comes with it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from ..core.schema import PREPROCESS_NAME
from ..kinds.base import const
from .contract import CATEGORY_INPUT, INPUT_NAME, ScalerStats
from .sigmoid import Graph

OPSET = 17
ROWS = "rows"  # the symbolic batch dimension
# The categorical columns' one-hot encoder (OneHotEncoder, in ONNX's machine-learning domain
# since its first version): a detector without categorical columns does not import it.
ML_DOMAIN = "ai.onnx.ml"
ONE_HOT_OPSET = 1


def detector_inputs(stats: ScalerStats) -> list[onnx.ValueInfoProto]:
    """`transaction` (rows, numeric inputs) float64, and with categorical columns
    `category` (rows, categorical columns) string."""
    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.DOUBLE,
                                            [ROWS, len(stats.inputs)])]
    if stats.categories:
        inputs.append(helper.make_tensor_value_info(CATEGORY_INPUT, TensorProto.STRING,
                                                    [ROWS, len(stats.categories)]))
    return inputs


def preprocess_opsets(stats: ScalerStats) -> dict[str, int]:
    """The operator sets the preprocessing needs beyond the default domain."""
    return {ML_DOMAIN: ONE_HOT_OPSET} if stats.categories else {}


def category_graph(stats: ScalerStats, numeric32: str, features32: str) -> Graph:
    """`numeric32` and each categorical column's one-hot block (OneHotEncoder over the
    training split's levels, `zeros=1`: an unseen category, or the empty text of a missing
    one, is a row of zeros), concatenated into `features32` (float32)."""
    p = f"{PREPROCESS_NAME}/"
    nodes, constants, blocks = [], [], [numeric32]
    for i, (_, levels) in enumerate(stats.categories):
        q = f"{p}category_{i}/"
        constants += [const(q + "start", [i], np.int64), const(q + "end", [i + 1], np.int64),
                      const(q + "axis", [1], np.int64)]
        nodes += [helper.make_node("Slice", [CATEGORY_INPUT, q + "start", q + "end", q + "axis"],
                                   [q + "text"], name=q + "text"),
                  helper.make_node("OneHotEncoder", [q + "text"], [q + "one_hot3"],
                                   name=q + "one_hot3", domain=ML_DOMAIN,
                                   cats_strings=list(levels), zeros=1),
                  # (rows, 1, levels) → (rows, levels); Squeeze keeps the batch dimension
                  # symbolic, so the contract's shape inference can bound every value.
                  helper.make_node("Squeeze", [q + "one_hot3", q + "axis"], [q + "one_hot"],
                                   name=q + "one_hot")]
        blocks.append(q + "one_hot")
    nodes.append(helper.make_node("Concat", blocks, [features32], name=p + "with_categories",
                                  axis=1))
    return nodes, constants



def preprocess_graph(stats: ScalerStats, eps: float, features32: str) -> Graph:
    """Raw inputs (float64) → `features32`: the amount (the last input, if declared) as
    log(amount + eps), standardise and clip in float64 (export.py PREPROCESSING_STEPS), then
    float32, as the scale stage stores the features; then the categorical columns' one-hot
    blocks, if any (`category_graph`). The network's detector passes its network's input
    name; the peers pass a float32 tensor that they widen again."""
    n_plain = stats.n_plain
    p = f"{PREPROCESS_NAME}/"
    constants = []
    if stats.log_input is not None:  # slice the plain block and the amount, log the amount
        constants += [const(p + "v_start", [0], np.int64),
                      const(p + "v_end", [n_plain], np.int64),
                      const(p + "amount_start", [n_plain], np.int64),
                      const(p + "amount_end", [n_plain + 1], np.int64),
                      const(p + "axis", [1], np.int64), const(p + "eps", eps, np.float64)]
    constants += [const(p + "mean", stats.mean, np.float64),
                  const(p + "scale", stats.scale, np.float64),
                  const(p + "clip_min", -stats.clip, np.float64),
                  const(p + "clip_max", stats.clip, np.float64)]
    if stats.log_input is not None:
        steps = [("Slice", "v1_v28", [INPUT_NAME, p + "v_start", p + "v_end", p + "axis"], {}),
                 ("Slice", "amount", [INPUT_NAME, p + "amount_start", p + "amount_end",
                                      p + "axis"], {}),
                 ("Add", "amount_plus_eps", [p + "amount", p + "eps"], {}),
                 ("Log", "log_amount", [p + "amount_plus_eps"], {}),
                 ("Concat", "features64", [p + "v1_v28", p + "log_amount"], {"axis": 1})]
    else:
        steps = [("Identity", "features64", [INPUT_NAME], {})]
    steps += [("Sub", "standardise_centre", [p + "features64", p + "mean"], {}),
              ("Div", "standardise_scale", [p + "standardise_centre", p + "scale"], {}),
              ("Clip", "clip", [p + "standardise_scale", p + "clip_min", p + "clip_max"], {})]
    nodes = [helper.make_node(op, inputs, [p + name], name=p + name, **attributes)
             for op, name, inputs, attributes in steps]
    numeric32 = p + "numeric32" if stats.categories else features32
    nodes.append(helper.make_node("Cast", [p + "clip"], [numeric32], name=p + "to_float32",
                                  to=TensorProto.FLOAT))
    if stats.categories:
        category_nodes, category_constants = category_graph(stats, numeric32, features32)
        nodes += category_nodes
        constants += category_constants
    return nodes, constants
