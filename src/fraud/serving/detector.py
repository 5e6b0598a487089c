"""The deployable detector (raw transactions in, fraud probability out) and the ONNX files.

Used by the train stages, which have TensorFlow loaded anyway, so that nothing downstream
needs it: each train stage writes its network as ONNX (`network_to_onnx`, for the evaluate
stages to score with onnxruntime) and its detector as `.keras` (`build_detector`) and `.onnx`
(`detector_onnx`). The export stage then only copies the chosen pair (src/fraud/serving/export.py).

The tutorial: "If you want to deploy a model, it's critical that you preserve the
preprocessing calculations. The easiest way to implement them as layers, and attach them to
your model before export." See contract.py's docstring for the arithmetic.

Keras detector: only built-in Keras ops and layers appear in the graph (GetItem, Add, Log,
Concatenate, Subtract, Divide, Clip, Cast; the constants are stored in config.json as
`__numpy__` arrays), so `keras.saving.load_model(path)` loads it in safe mode without any
project code. Keras' `model.predict` casts float64 inputs to float32 before the first op;
calling the model, `model(x)`, on float64 keeps the precision.

ONNX detector: the network goes through tf2onnx (via `keras.Model.export`); the
preprocessing is written as ONNX ops directly, in float64, rather than converted from the
Keras graph: tf2onnx computes a float64 `Log` in float32 and TensorFlow's grappler turns the
division by `scale` into a multiplication by its reciprocal, so the converted features would
differ from the pipeline's by a float32 ulp now and then. Written directly, they are the
pipeline's numpy arithmetic op for op (tests check both detectors against it).

ONNX bytes are made reproducible (`canonical`): tf2onnx names the graph after the traced
function's process-wide counter and numbers its symbolic dimensions and some nodes the same
way, so equal networks would otherwise give different files on every run.
"""

from __future__ import annotations

import logging
import platform
import re
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ..core.declaration import shown_columns
from ..core.schema import PREPROCESS_NAME
from ..errors import PipelineError
from ..training.network import keras, tf
from .contract import (
    CATEGORY_INPUT,
    INPUT_DTYPE,
    INPUT_NAME,
    MODEL_NAME,
    NETWORK_INPUT,
    OUTPUT_NAME,
    ScalerStats,
    save_onnx,
)
from .preprocess_graph import OPSET, ROWS, detector_inputs, preprocess_graph, preprocess_opsets

# The ONNX operator set: pinned, so that a new tf2onnx default does not change the files.
# 17 is read by ONNX Runtime 1.11 (2022) and later, in every language.
NETWORK_NAME = "fraud_classifier"


def check_network(network: keras.Model, label: str | Path, n_features: int) -> None:
    """The trained network must take the scaled features and return one probability."""
    inputs, outputs = network.inputs, network.outputs
    if len(inputs) != 1 or tuple(inputs[0].shape) != (None, n_features):
        raise PipelineError(f"{label}: expected a model with one (rows, {n_features}) input, "
                            f"got {[tuple(t.shape) for t in inputs]}; run the train stages again")
    if len(outputs) != 1 or tuple(outputs[0].shape) != (None, 1):
        raise PipelineError(f"{label}: expected a model with one (rows, 1) output, got "
                            f"{[tuple(t.shape) for t in outputs]}; run the train stages again")


def _name(tensor: Any, name: str) -> Any:
    """Names the op that produced `tensor`.

    keras.ops functions take no `name`: left alone, ops get process-wide counters
    (`get_item_3`), so the saved config (and the file's bytes) would depend on what the
    process built before. Fixed names keep the export byte-identical.
    """
    tensor._keras_history.operation.name = name
    return tensor


def build_preprocess(stats: ScalerStats, eps: float) -> keras.Model:
    """Raw (rows, inputs) float64 → the float32 features the network was trained on, with
    the pipeline's arithmetic (clean, then scale) in float64 (preprocess_graph.py's twin)."""
    from keras import ops

    raw = keras.Input(shape=(len(stats.inputs),), dtype=INPUT_DTYPE, name="raw")
    if stats.log_input is not None:
        v = _name(raw[:, :stats.n_plain], "v1_v28")
        amount = _name(raw[:, stats.n_plain:], "amount")
        shifted = _name(ops.add(amount, float(eps)), "amount_plus_eps")
        log_amount = _name(ops.log(shifted), "log_amount")
        features = _name(ops.concatenate([v, log_amount], axis=1), "features")
    else:
        features = raw
    centred = _name(ops.subtract(features, stats.mean), "standardise_centre")
    standardised = _name(ops.divide(centred, stats.scale), "standardise_scale")
    clipped = _name(ops.clip(standardised, -float(stats.clip), float(stats.clip)), "clip")
    out = _name(ops.cast(clipped, "float32"), "to_float32")
    if not stats.categories:
        return keras.Model(raw, out, name=PREPROCESS_NAME)
    text = keras.Input(shape=(len(stats.categories),), dtype="string", name="text")
    blocks = [out]
    for i, (_, levels) in enumerate(stats.categories):
        # One out-of-vocabulary index (0) takes unseen and missing text; dropping its
        # column leaves them none of the known levels, as the ONNX OneHotEncoder's zeros=1.
        lookup = keras.layers.StringLookup(vocabulary=list(levels), num_oov_indices=1,
                                           output_mode="one_hot", name=f"category_{i}")
        encoded = lookup(_name(text[:, i], f"category_{i}_text"))
        blocks.append(_name(ops.cast(encoded[:, 1:], "float32"), f"category_{i}_one_hot"))
    features = _name(ops.concatenate(blocks, axis=1), "with_categories")
    return keras.Model([raw, text], features, name=PREPROCESS_NAME)


def build_detector(network: keras.Model, stats: ScalerStats, eps: float) -> keras.Model:
    """transaction [, category] → preprocess → the network's layers (weights shared)."""
    preprocess = build_preprocess(stats, eps)
    raw = keras.Input(shape=(len(stats.inputs),), dtype=INPUT_DTYPE, name=INPUT_NAME)
    if stats.categories:
        text = keras.Input(shape=(len(stats.categories),), dtype="string", name=CATEGORY_INPUT)
        inputs: Any = [raw, text]
        x = preprocess([raw, text])
    else:
        inputs, x = raw, preprocess(raw)
    for layer in network.layers:
        x = layer(x)
    return keras.Model(inputs, x, name=MODEL_NAME)


# --- ONNX ---------------------------------------------------------------------------------

def versions() -> dict[str, str]:
    """The libraries that wrote the files (recorded in the detector and the card)."""
    import tf2onnx

    return {"python": platform.python_version(), "tensorflow": tf.__version__,
            "keras": keras.__version__, "tf2onnx": tf2onnx.__version__,
            "onnx": onnx.__version__, "numpy": np.__version__, "onnx_opset": str(OPSET)}


def _without_counters(name: str) -> str:
    """`fraud_classifier_1/hidden_1/MatMul` → `fraud_classifier/hidden/MatMul`: TensorFlow
    numbers name scopes per process; tf2onnx numbers the nodes it adds (`Log__17`)."""
    return re.sub(r"__?\d+(?=[/:]|$)", "", name)


def canonical(model: onnx.ModelProto, graph_name: str, metadata: dict[str, str],
              doc: str) -> onnx.ModelProto:
    """The same graph with names, dimensions and documentation that do not depend on the
    process that converted it; the one output renamed `probability`."""
    graph = model.graph
    inputs = {value.name for value in graph.input}
    (output,) = graph.output
    renamed: dict[str, str] = {output.name: OUTPUT_NAME}
    taken = set(inputs) | {OUTPUT_NAME}
    names = [*(i.name for i in graph.initializer),
             *(o for node in graph.node for o in node.output)]
    for name in names:
        if name in renamed or name in inputs:
            continue
        new = _without_counters(name)
        while new in taken:  # never in practice; keeps names unique if it happens
            new += "_"
        renamed[name] = new
        taken.add(new)
    node_names: set[str] = set()
    for node in graph.node:
        node.input[:] = [renamed.get(name, name) for name in node.input]
        node.output[:] = [renamed.get(name, name) for name in node.output]
        new = _without_counters(node.name)
        while new in node_names:
            new += "_"
        node.name = new
        node_names.add(new)
    for tensor in graph.initializer:
        tensor.name = renamed.get(tensor.name, tensor.name)
    output.name = OUTPUT_NAME
    for value in [*graph.input, *graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = ROWS
    del graph.value_info[:]
    graph.name, graph.doc_string, model.doc_string = graph_name, "", doc
    del model.metadata_props[:]
    for key, value in sorted(metadata.items()):
        model.metadata_props.add(key=key, value=value)
    return model


def network_to_onnx(network: keras.Model, strategy: str) -> onnx.ModelProto:
    """The trained network (scaled float32 features in, probability out) as ONNX."""
    n_features = int(network.inputs[0].shape[1])
    signature = [tf.TensorSpec((None, n_features), tf.float32, name=NETWORK_INPUT)]
    # tf2onnx logs its versions and optimiser passes at INFO in the stage's output: not ours.
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        # Keras' tf2onnx shim touches np.object (a FutureWarning on numpy 2): not ours.
        warnings.simplefilter("ignore", FutureWarning)
        path = Path(folder) / "network.onnx"
        network.export(path, format="onnx", verbose=False, input_signature=signature,
                       opset_version=OPSET)
        converted = onnx.load(path)
    return canonical(converted, NETWORK_NAME, {"strategy": strategy},
                     f"the trained network: {n_features} scaled, clipped float32 features in "
                     "(as the scale stage writes them), fraud probability out")


def detector_onnx(network: onnx.ModelProto, stats: ScalerStats, eps: float,
                  metadata: dict[str, str]) -> onnx.ModelProto:
    """transaction (rows, inputs) float64 → preprocess → the network → probability (rows, 1)."""
    nodes, constants = preprocess_graph(stats, eps, NETWORK_INPUT)
    graph = helper.make_graph([*nodes, *network.graph.node], MODEL_NAME,
                              detector_inputs(stats), list(network.graph.output),
                              initializer=[*constants, *network.graph.initializer])
    extra = [helper.make_opsetid(domain, version)
             for domain, version in preprocess_opsets(stats).items()]
    opsets = [*network.opset_import, *extra]
    model = helper.make_model(graph, opset_imports=opsets,
                              ir_version=max(network.ir_version,
                                             helper.find_min_ir_version_for(extra)
                                             if extra else 0),
                              producer_name=network.producer_name,
                              producer_version=network.producer_version,
                              doc_string=f"fraud detector: raw {shown_columns(stats.inputs)} "
                                         "(float64) in, fraud probability out; see the model "
                                         "card")
    for key, value in sorted(metadata.items()):
        model.metadata_props.add(key=key, value=value)
    onnx.checker.check_model(model, full_check=True)
    return model


def save_all(network: keras.Model, strategy: str, stats: ScalerStats, eps: float, *,
             network_onnx_path: Path, detector_path: Path, detector_onnx_path: Path) -> None:
    """What a train stage writes besides its `.keras` network: the network as ONNX, and the
    detector as `.keras` and `.onnx`. The ONNX detector records the `.keras` detector's
    sha256, so export can tell that the pair it ships comes from one run."""
    from ..core.files import file_sha256
    from ..training.network import save_model
    from .contract import detector_metadata

    check_network(network, f"the {strategy} network", len(stats.features))
    network_onnx = network_to_onnx(network, strategy)
    save_onnx(network_onnx, network_onnx_path)
    save_model(build_detector(network, stats, eps), detector_path)
    metadata = detector_metadata(strategy, stats, eps, file_sha256(detector_path), versions())
    save_onnx(detector_onnx(network_onnx, stats, eps, metadata), detector_onnx_path)
