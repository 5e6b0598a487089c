"""The tutorial's network (Dense(16, relu) -> Dense(1)) trained three ways: plain, with
class weights, and on oversampled batches. One network, three kinds: src/stages/train.py
trains them (TensorFlow), the detector is exported from Keras, and explain.py reads the
Dense layers back from the ONNX graph (exact integrated gradients).
"""

from __future__ import annotations

from .base import NETWORK, ModelKind

# oversample's stage is train_resampled: name stages from here, never as f"train_{name}".
KINDS = (
    ModelKind(name="baseline", train_stage="train_baseline", color="#0072B2",  # blue
              order=10, family=NETWORK, explanation="network"),
    ModelKind(name="weighted", train_stage="train_weighted", color="#E69F00",  # orange
              order=20, family=NETWORK, explanation="network"),
    ModelKind(name="oversample", train_stage="train_resampled",
              color="#009E73", order=30, family=NETWORK, explanation="network"),  # bluish green
)
