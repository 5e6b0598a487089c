"""Frozen reference code: the fixed points the benchmark compares the pipeline against.

    tutorial.py    the TensorFlow tutorial "Classification on imbalanced data" as written
                   (the notebook's cells in order, as literally as Keras 3 allows), end to end
                   and timed phase by phase: `python -m bench.reference.tutorial ...`
    tight_loop.py  the per-epoch reference paths of `python -m bench.inprocess epochs`: the
                   tutorial's own `fit` calls (its per-element `sample_from_datasets`
                   oversampler included) and the "floor", one `tf.function` per epoch with
                   the data on the device, loss only: the arithmetic floor of an epoch

This code is meant to differ from src/. It re-implements on purpose what the pipeline does
its own way (the model, the class weights, the oversampler, the training loop), because the
benchmark measures how src/ compares with it: "N× faster than the tutorial" only means
something while the tutorial stays the tutorial, and "M× the floor" while the floor stays a
bare loop. So:

  * do not refactor it to share src/ code, or to follow src/'s changes: every such edit moves
    the yardstick, and old results (bench/RESULTS.md, bench/NOTES.md) stop being comparable;
  * do not "fix" what looks slow or old-fashioned in it: that is what is being measured;
  * the only edits that belong here are the ones the libraries force (Keras 3 API changes;
    the list is at the top of tutorial.py), each said so in its docstring.

What the floor does take from src/ (the model, its initial weights, the batch size, the
number of steps) is what makes it the floor *of the pipeline's* epoch: same arithmetic, none
of Keras' per-step machinery.

Everything else in bench/ measures the pipeline's own code and must call src/, never copy it.
"""
