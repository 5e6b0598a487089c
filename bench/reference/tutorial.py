"""The reference: the tutorial's own code path ("Classification on imbalanced data"), as
literally as Keras 3 allows, timed phase by phase. Frozen reference code (see
bench/reference/__init__.py): it differs from src/ on purpose.

    python -m bench.reference.tutorial --csv data/raw/creditcard.csv --epochs 20 --out tutorial.json

What it runs, in the notebook's order: read the CSV with pandas, drop Time, log Amount,
`train_test_split` twice, StandardScaler on train, clip to ±5; the model (Dense 16 relu,
Dropout 0.5, Dense 1 sigmoid, Adam 1e-3) with the tutorial's metrics; the initial-loss checks,
the careful bias, a checkpoint of the initial weights; the zero-vs-careful bias comparison
(2 × `--compare-epochs` epochs, fresh model each); the baseline, class-weighted and
oversampled fits (batch 2048, early stopping on val_prc, restore best weights), each followed
by `predict` on train and test at batch 2048, `evaluate` on test and the notebook's figures
(loss / metrics curves, confusion matrix, ROC, PR, saved as PNG); the oversampler is the
notebook's per-element `tf.data.Dataset.sample_from_datasets` over shuffled (buffer 100,000),
repeated per-class datasets, batched and prefetched.

Where Keras 3 forces a change, or the comparison needs one:
  * labels are reshaped to (rows, 1): Keras 3's cross-entropy metric refuses (rows,) labels
    against the model's (rows, 1) output (the current tutorial does the same);
  * `keras.Input` instead of `input_shape=`, `learning_rate=` instead of `lr=`, weights saved
    as `.weights.h5`; `tf.data.Dataset.sample_from_datasets` (the `experimental` alias is gone);
  * the metrics are the current tutorial's eleven (the 2020 seed had eight), the same list
    the pipeline logs, so the comparison measures the code path and not the metric count;
  * `--epochs` fixes the number of epochs (early-stopping patience = epochs), and the
    oversampling "epoch" counts the training split's negatives (178 steps on the real data;
    the notebook counted the whole file's, 278), exactly as the pipeline does;
  * `train_test_split` gets `random_state=--seed` (the notebook has none), for repeatability;
  * the notebook's final "re-train with 20-step epochs" experiment is left out: the pipeline
    has no counterpart.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

BATCH_SIZE = 2048
BUFFER_SIZE = 100000


def keras():
    from tensorflow import keras as tf_keras  # the notebook's import
    return tf_keras


def metrics():
    k = keras()
    return [
        k.metrics.BinaryCrossentropy(name="cross entropy"),  # same as model's loss
        k.metrics.MeanSquaredError(name="Brier score"),
        k.metrics.TruePositives(name="tp"),
        k.metrics.FalsePositives(name="fp"),
        k.metrics.TrueNegatives(name="tn"),
        k.metrics.FalseNegatives(name="fn"),
        k.metrics.BinaryAccuracy(name="accuracy"),
        k.metrics.Precision(name="precision"),
        k.metrics.Recall(name="recall"),
        k.metrics.AUC(name="auc"),
        k.metrics.AUC(name="prc", curve="PR"),  # precision-recall curve
    ]


def make_model(n_features: int, metrics_list=None, output_bias=None):
    k = keras()
    if output_bias is not None:
        output_bias = k.initializers.Constant(output_bias)
    model = k.Sequential([
        k.Input(shape=(n_features,)),
        k.layers.Dense(16, activation="relu"),
        k.layers.Dropout(0.5),
        k.layers.Dense(1, activation="sigmoid", bias_initializer=output_bias or "zeros"),
    ])
    model.compile(optimizer=k.optimizers.Adam(learning_rate=1e-3),
                  loss=k.losses.BinaryCrossentropy(), metrics=metrics_list or metrics())
    return model


class EpochTimes:
    """A Keras callback keeping each epoch's wall time (built lazily: Keras is imported late)."""

    def __new__(cls):
        k = keras()

        class _Times(k.callbacks.Callback):
            def __init__(self) -> None:
                super().__init__()
                self.seconds: list[float] = []
                self._start = 0.0

            def on_epoch_begin(self, epoch, logs=None):
                self._start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.seconds.append(time.perf_counter() - self._start)

        return _Times()


def make_ds(features, labels):
    import tensorflow as tf
    ds = tf.data.Dataset.from_tensor_slices((features, labels))  # .cache()
    ds = ds.shuffle(BUFFER_SIZE).repeat()
    return ds


def resampled_dataset(train_features, train_labels):
    import tensorflow as tf
    bool_train_labels = train_labels[:, 0] != 0
    pos_ds = make_ds(train_features[bool_train_labels], train_labels[bool_train_labels])
    neg_ds = make_ds(train_features[~bool_train_labels], train_labels[~bool_train_labels])
    resampled_ds = tf.data.Dataset.sample_from_datasets([pos_ds, neg_ds], weights=[0.5, 0.5])
    return resampled_ds.batch(BATCH_SIZE).prefetch(2)


def val_dataset(val_features, val_labels):
    import tensorflow as tf
    val_ds = tf.data.Dataset.from_tensor_slices((val_features, val_labels)).cache()
    return val_ds.batch(BATCH_SIZE).prefetch(2)


# --- the notebook's training cells (also run by tight_loop.py, one strategy at a time) ------

def early_stopping(epochs: int):
    return keras().callbacks.EarlyStopping(monitor="val_prc", verbose=0, patience=epochs,
                                           mode="max", restore_best_weights=True)


def class_weight(neg, pos) -> dict:
    total = neg + pos
    weight_for_0 = (1 / neg) * (total / 2.0)
    weight_for_1 = (1 / pos) * (total / 2.0)
    return {0: weight_for_0, 1: weight_for_1}


def resampled_steps(neg_train: int) -> int:
    return math.ceil(2.0 * neg_train / BATCH_SIZE)


def fit_on_arrays(model, train, val, epochs: int, callbacks, class_weight=None):
    """The zero/careful bias, baseline and class-weighted fits: numpy arrays, batch 2048."""
    return model.fit(train[0], train[1], batch_size=BATCH_SIZE, epochs=epochs,
                     callbacks=callbacks, validation_data=val, class_weight=class_weight,
                     verbose=0)


def fit_resampled(model, resampled_ds, steps_per_epoch: int, val, epochs: int, callbacks):
    """The oversampled fit: output bias 0 (the batches are balanced), cached validation set."""
    output_layer = model.layers[-1]
    output_layer.bias.assign([0])
    val_ds = val_dataset(*val)
    return model.fit(resampled_ds, epochs=epochs, steps_per_epoch=steps_per_epoch,
                     callbacks=callbacks, validation_data=val_ds, verbose=0)


# --- the notebook's figures ---------------------------------------------------------------

class Figures:
    """The notebook's plots, each saved as figure_<n>.png in `out` (matplotlib's Agg)."""

    def __init__(self, out: Path) -> None:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib as mpl
        import matplotlib.pyplot as plt
        import seaborn as sns
        import sklearn.metrics

        mpl.rcParams["figure.figsize"] = (12, 10)
        self.out, self.plt, self.sns, self.skm = out, plt, sns, sklearn.metrics
        self.colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        self.count = 0

    def save(self) -> None:
        self.plt.savefig(self.out / f"figure_{self.count}.png")
        self.count += 1
        self.plt.close("all")

    def loss(self, history, label, n) -> None:
        plt, colors = self.plt, self.colors
        plt.semilogy(history.epoch, history.history["loss"], color=colors[n],
                     label="Train " + label)
        plt.semilogy(history.epoch, history.history["val_loss"], color=colors[n],
                     label="Val " + label, linestyle="--")
        plt.xlabel("Epoch")
        plt.ylabel("Loss")
        plt.legend()

    def metrics(self, history) -> None:
        plt, colors = self.plt, self.colors
        for n, metric in enumerate(["loss", "prc", "precision", "recall"]):
            name = metric.replace("_", " ").capitalize()
            plt.subplot(2, 2, n + 1)
            plt.plot(history.epoch, history.history[metric], color=colors[0], label="Train")
            plt.plot(history.epoch, history.history["val_" + metric], color=colors[0],
                     linestyle="--", label="Val")
            plt.xlabel("Epoch")
            plt.ylabel(name)
            plt.legend()
        self.save()

    def cm(self, labels, predictions, threshold=0.5) -> None:
        plt = self.plt
        cm = self.skm.confusion_matrix(labels, predictions > threshold)
        plt.figure(figsize=(5, 5))
        self.sns.heatmap(cm, annot=True, fmt="d")
        plt.title(f"Confusion matrix @{threshold:.2f}")
        plt.ylabel("Actual label")
        plt.xlabel("Predicted label")
        self.save()

    def roc(self, name, labels, predictions, **kwargs) -> None:
        fp, tp, _ = self.skm.roc_curve(labels, predictions)
        self.plt.plot(100 * fp, 100 * tp, label=name, linewidth=2, **kwargs)
        self.plt.xlabel("False positives [%]")
        self.plt.ylabel("True positives [%]")
        self.plt.grid(True)

    def prc(self, name, labels, predictions, **kwargs) -> None:
        precision, recall, _ = self.skm.precision_recall_curve(labels, predictions)
        self.plt.plot(precision, recall, label=name, linewidth=2, **kwargs)
        self.plt.xlabel("Precision")
        self.plt.ylabel("Recall")
        self.plt.grid(True)

    def curves(self, curves) -> None:
        for plot in (self.roc, self.prc):
            for n, (name, labels, predictions, style) in enumerate(curves):
                plot(name, labels, predictions, color=self.colors[n // 2], linestyle=style)
            self.plt.legend(loc="lower right")
            self.save()

    def distribution(self, pos_df, neg_df) -> None:
        for df in (pos_df, neg_df):
            self.sns.jointplot(x=df["V5"], y=df["V6"], kind="hex", xlim=(-5, 5), ylim=(-5, 5))
            self.save()


# --- the notebook, end to end ------------------------------------------------------------

class Phases:
    """Wall seconds per named phase: each call closes the phase running since the last one."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._mark = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._mark
        self._mark = now


class Notebook:
    """The notebook's cells in its order; its variables are attributes, shared between them."""

    def __init__(self, epochs: int, compare_epochs: int, out_dir: Path) -> None:
        self.phase = Phases()
        self.epochs, self.compare_epochs = epochs, compare_epochs
        self.epoch_seconds: dict[str, list[float]] = {}
        self.results: dict[str, dict[str, float]] = {}
        self.curves: list = []
        for module in ("numpy", "pandas", "tensorflow", "sklearn.model_selection",
                       "sklearn.preprocessing"):
            importlib.import_module(module)
        keras()
        self.fig = Figures(out_dir)
        self.phase("imports")

    def read_split_scale(self, csv: Path, seed: int) -> None:
        import numpy as np
        import pandas as pd
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        keras().utils.set_random_seed(seed)
        raw_df = pd.read_csv(csv)
        self.phase("read_csv")
        self.neg, self.pos = np.bincount(raw_df["Class"])
        cleaned_df = raw_df.copy()
        cleaned_df.pop("Time")
        eps = 0.001  # 0 => 0.1¢
        cleaned_df["Log Amount"] = np.log(cleaned_df.pop("Amount") + eps)
        train_df, test_df = train_test_split(cleaned_df, test_size=0.2, random_state=seed)
        train_df, val_df = train_test_split(train_df, test_size=0.2, random_state=seed)
        self.train_labels = np.array(train_df.pop("Class")).reshape(-1, 1)
        self.bool_train_labels = self.train_labels[:, 0] != 0
        self.val_labels = np.array(val_df.pop("Class")).reshape(-1, 1)
        self.test_labels = np.array(test_df.pop("Class")).reshape(-1, 1)
        train_features = np.array(train_df)
        val_features = np.array(val_df)
        test_features = np.array(test_df)
        scaler = StandardScaler()
        train_features = scaler.fit_transform(train_features)
        val_features = scaler.transform(val_features)
        test_features = scaler.transform(test_features)
        self.train_features = np.clip(train_features, -5, 5)
        self.val_features = np.clip(val_features, -5, 5)
        self.test_features = np.clip(test_features, -5, 5)
        self.phase("clean_split_scale")
        pos_df = pd.DataFrame(self.train_features[self.bool_train_labels],
                              columns=train_df.columns)
        neg_df = pd.DataFrame(self.train_features[~self.bool_train_labels],
                              columns=train_df.columns)
        self.fig.distribution(pos_df, neg_df)
        self.phase("figures")

    def initial_bias(self) -> None:
        import numpy as np

        self.n_features = self.train_features.shape[-1]
        self.early_stopping = early_stopping(self.epochs)
        model = make_model(self.n_features)
        model.predict(self.train_features[:10], verbose=0)
        model.evaluate(self.train_features, self.train_labels, batch_size=BATCH_SIZE, verbose=0)
        initial_bias = np.log([self.pos / self.neg])
        model = make_model(self.n_features, output_bias=initial_bias)
        model.predict(self.train_features[:10], verbose=0)
        model.evaluate(self.train_features, self.train_labels, batch_size=BATCH_SIZE, verbose=0)
        self.initial_weights = os.path.join(tempfile.mkdtemp(), "initial.weights.h5")
        model.save_weights(self.initial_weights)
        self.phase("initial_bias")

    def initial_model(self):
        model = make_model(self.n_features)
        model.load_weights(self.initial_weights)
        return model

    def timer(self, name: str):
        """The callback keeping the epoch times of the fit `name`."""
        timer = EpochTimes()
        self.epoch_seconds[name] = timer.seconds
        return timer

    def bias_comparison(self) -> None:
        train = (self.train_features, self.train_labels)
        val = (self.val_features, self.val_labels)
        model = self.initial_model()
        model.layers[-1].bias.assign([0.0])
        zero_bias_history = fit_on_arrays(model, train, val, self.compare_epochs,
                                          [self.timer("zero_bias")])
        model = self.initial_model()
        careful_bias_history = fit_on_arrays(model, train, val, self.compare_epochs,
                                             [self.timer("careful_bias")])
        self.phase("bias_comparison")
        self.fig.loss(zero_bias_history, "Zero Bias", 0)
        self.fig.loss(careful_bias_history, "Careful Bias", 1)
        self.fig.save()
        self.phase("figures")

    def report(self, name: str, model, history) -> None:
        train_predictions = model.predict(self.train_features, batch_size=BATCH_SIZE, verbose=0)
        test_predictions = model.predict(self.test_features, batch_size=BATCH_SIZE, verbose=0)
        values = model.evaluate(self.test_features, self.test_labels, batch_size=BATCH_SIZE,
                                verbose=0, return_dict=True)
        self.results[name] = {key: float(value) for key, value in values.items()}
        self.phase(f"{name}_predict_evaluate")
        self.fig.metrics(history)
        self.fig.cm(self.test_labels, test_predictions)
        self.curves.extend([(f"Train {name}", self.train_labels, train_predictions, "-"),
                            (f"Test {name}", self.test_labels, test_predictions, "--")])
        self.phase("figures")

    def train_on_arrays(self, name: str, weights: dict | None = None) -> None:
        """The baseline fit (`weights` None) and the class-weighted one."""
        model = self.initial_model()
        history = fit_on_arrays(model, (self.train_features, self.train_labels),
                                (self.val_features, self.val_labels), self.epochs,
                                [self.early_stopping, self.timer(name)], weights)
        self.phase(f"{name}_fit")
        self.report(name, model, history)

    def train_oversampled(self) -> None:
        resampled_ds = resampled_dataset(self.train_features, self.train_labels)
        neg_train = int((~self.bool_train_labels).sum())
        self.resampled_steps_per_epoch = resampled_steps(neg_train)
        resampled_model = self.initial_model()
        resampled_history = fit_resampled(resampled_model, resampled_ds,
                                          self.resampled_steps_per_epoch,
                                          (self.val_features, self.val_labels), self.epochs,
                                          [self.early_stopping, self.timer("oversample")])
        self.phase("oversample_fit")
        self.report("oversample", resampled_model, resampled_history)
        self.fig.curves(self.curves)
        self.phase("figures")

    def summary(self) -> dict:
        phases = self.phase.seconds
        return {"phases": phases, "epoch_seconds": self.epoch_seconds,
                "test_metrics": self.results, "epochs": self.epochs,
                "compare_epochs": self.compare_epochs,
                "oversample_steps_per_epoch": self.resampled_steps_per_epoch,
                "rows": int(self.neg + self.pos), "in_process_s": sum(phases.values())}


def run(csv: Path, epochs: int, compare_epochs: int, seed: int, out_dir: Path) -> dict:
    notebook = Notebook(epochs, compare_epochs, out_dir)
    notebook.read_split_scale(csv, seed)
    notebook.initial_bias()
    notebook.bias_comparison()
    notebook.train_on_arrays("baseline")
    notebook.train_on_arrays("weighted", class_weight(notebook.neg, notebook.pos))
    notebook.train_oversampled()
    return notebook.summary()


def main(argv: list[str] | None = None) -> None:
    cli = argparse.ArgumentParser(description="The tutorial's code path, timed.")
    cli.add_argument("--csv", required=True, type=Path)
    cli.add_argument("--epochs", type=int, required=True)
    cli.add_argument("--compare-epochs", type=int, default=20)
    cli.add_argument("--seed", type=int, default=42)
    cli.add_argument("--out", required=True, type=Path)
    args = cli.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tutorial-figures-") as figures:
        result = run(args.csv, args.epochs, args.compare_epochs, args.seed, Path(figures))
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
