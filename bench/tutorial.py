"""The reference: the tutorial's own code path ("Classification on imbalanced data"), as
literally as Keras 3 allows, timed phase by phase.

    python -m bench.tutorial --csv data/raw/creditcard.csv --epochs 20 --out tutorial.json

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


# --- the notebook's figures ---------------------------------------------------------------

def _figures(out: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib as mpl
    import matplotlib.pyplot as plt
    import numpy as np
    import seaborn as sns
    import sklearn.metrics
    from sklearn.metrics import confusion_matrix

    mpl.rcParams["figure.figsize"] = (12, 10)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    counter = iter(range(10_000))

    def save():
        plt.savefig(out / f"figure_{next(counter)}.png")
        plt.close("all")

    def plot_loss(history, label, n):
        plt.semilogy(history.epoch, history.history["loss"], color=colors[n],
                     label="Train " + label)
        plt.semilogy(history.epoch, history.history["val_loss"], color=colors[n],
                     label="Val " + label, linestyle="--")
        plt.xlabel("Epoch")
        plt.ylabel("Loss")
        plt.legend()

    def plot_metrics(history):
        for n, metric in enumerate(["loss", "prc", "precision", "recall"]):
            name = metric.replace("_", " ").capitalize()
            plt.subplot(2, 2, n + 1)
            plt.plot(history.epoch, history.history[metric], color=colors[0], label="Train")
            plt.plot(history.epoch, history.history["val_" + metric], color=colors[0],
                     linestyle="--", label="Val")
            plt.xlabel("Epoch")
            plt.ylabel(name)
            plt.legend()
        save()

    def plot_cm(labels, predictions, threshold=0.5):
        cm = confusion_matrix(labels, predictions > threshold)
        plt.figure(figsize=(5, 5))
        sns.heatmap(cm, annot=True, fmt="d")
        plt.title(f"Confusion matrix @{threshold:.2f}")
        plt.ylabel("Actual label")
        plt.xlabel("Predicted label")
        save()

    def plot_roc(name, labels, predictions, **kwargs):
        fp, tp, _ = sklearn.metrics.roc_curve(labels, predictions)
        plt.plot(100 * fp, 100 * tp, label=name, linewidth=2, **kwargs)
        plt.xlabel("False positives [%]")
        plt.ylabel("True positives [%]")
        plt.grid(True)

    def plot_prc(name, labels, predictions, **kwargs):
        precision, recall, _ = sklearn.metrics.precision_recall_curve(labels, predictions)
        plt.plot(precision, recall, label=name, linewidth=2, **kwargs)
        plt.xlabel("Precision")
        plt.ylabel("Recall")
        plt.grid(True)

    def plot_curves(curves):
        for plot in (plot_roc, plot_prc):
            for n, (name, labels, predictions, style) in enumerate(curves):
                plot(name, labels, predictions, color=colors[n // 2], linestyle=style)
            plt.legend(loc="lower right")
            save()

    def plot_distribution(pos_df, neg_df):
        sns.jointplot(x=pos_df["V5"], y=pos_df["V6"], kind="hex", xlim=(-5, 5), ylim=(-5, 5))
        save()
        sns.jointplot(x=neg_df["V5"], y=neg_df["V6"], kind="hex", xlim=(-5, 5), ylim=(-5, 5))
        save()

    return {"loss": plot_loss, "metrics": plot_metrics, "cm": plot_cm, "curves": plot_curves,
            "distribution": plot_distribution, "save": save, "np": np}


# --- the notebook, end to end ------------------------------------------------------------

def run(csv: Path, epochs: int, compare_epochs: int, seed: int, out_dir: Path) -> dict:
    phases: dict[str, float] = {}
    epoch_seconds: dict[str, list[float]] = {}
    mark = [time.perf_counter()]

    def phase(name: str) -> None:
        now = time.perf_counter()
        phases[name] = phases.get(name, 0.0) + now - mark[0]
        mark[0] = now

    import numpy as np
    import pandas as pd
    import tensorflow as tf
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler
    k = keras()
    fig = _figures(out_dir)
    phase("imports")
    k.utils.set_random_seed(seed)

    raw_df = pd.read_csv(csv)
    phase("read_csv")
    neg, pos = np.bincount(raw_df["Class"])
    total = neg + pos
    cleaned_df = raw_df.copy()
    cleaned_df.pop("Time")
    eps = 0.001  # 0 => 0.1¢
    cleaned_df["Log Amount"] = np.log(cleaned_df.pop("Amount") + eps)
    train_df, test_df = train_test_split(cleaned_df, test_size=0.2, random_state=seed)
    train_df, val_df = train_test_split(train_df, test_size=0.2, random_state=seed)
    train_labels = np.array(train_df.pop("Class")).reshape(-1, 1)
    bool_train_labels = train_labels[:, 0] != 0
    val_labels = np.array(val_df.pop("Class")).reshape(-1, 1)
    test_labels = np.array(test_df.pop("Class")).reshape(-1, 1)
    train_features = np.array(train_df)
    val_features = np.array(val_df)
    test_features = np.array(test_df)
    scaler = StandardScaler()
    train_features = scaler.fit_transform(train_features)
    val_features = scaler.transform(val_features)
    test_features = scaler.transform(test_features)
    train_features = np.clip(train_features, -5, 5)
    val_features = np.clip(val_features, -5, 5)
    test_features = np.clip(test_features, -5, 5)
    phase("clean_split_scale")
    pos_df = pd.DataFrame(train_features[bool_train_labels], columns=train_df.columns)
    neg_df = pd.DataFrame(train_features[~bool_train_labels], columns=train_df.columns)
    fig["distribution"](pos_df, neg_df)
    phase("figures")

    n_features = train_features.shape[-1]
    early_stopping = k.callbacks.EarlyStopping(monitor="val_prc", verbose=0, patience=epochs,
                                               mode="max", restore_best_weights=True)
    model = make_model(n_features)
    model.predict(train_features[:10], verbose=0)
    model.evaluate(train_features, train_labels, batch_size=BATCH_SIZE, verbose=0)
    initial_bias = np.log([pos / neg])
    model = make_model(n_features, output_bias=initial_bias)
    model.predict(train_features[:10], verbose=0)
    model.evaluate(train_features, train_labels, batch_size=BATCH_SIZE, verbose=0)
    initial_weights = os.path.join(tempfile.mkdtemp(), "initial.weights.h5")
    model.save_weights(initial_weights)
    phase("initial_bias")

    def fit(name, model, *args, **kwargs):
        timer = EpochTimes()
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), timer]
        history = model.fit(*args, verbose=0, **kwargs)
        epoch_seconds[name] = timer.seconds
        return history

    model = make_model(n_features)
    model.load_weights(initial_weights)
    model.layers[-1].bias.assign([0.0])
    zero_bias_history = fit("zero_bias", model, train_features, train_labels,
                            batch_size=BATCH_SIZE, epochs=compare_epochs,
                            validation_data=(val_features, val_labels))
    model = make_model(n_features)
    model.load_weights(initial_weights)
    careful_bias_history = fit("careful_bias", model, train_features, train_labels,
                               batch_size=BATCH_SIZE, epochs=compare_epochs,
                               validation_data=(val_features, val_labels))
    phase("bias_comparison")
    fig["loss"](zero_bias_history, "Zero Bias", 0)
    fig["loss"](careful_bias_history, "Careful Bias", 1)
    fig["save"]()
    phase("figures")

    curves = []
    results = {}

    def report(name, model, history):
        train_predictions = model.predict(train_features, batch_size=BATCH_SIZE, verbose=0)
        test_predictions = model.predict(test_features, batch_size=BATCH_SIZE, verbose=0)
        values = model.evaluate(test_features, test_labels, batch_size=BATCH_SIZE, verbose=0,
                                return_dict=True)
        results[name] = {key: float(value) for key, value in values.items()}
        phase(f"{name}_predict_evaluate")
        fig["metrics"](history)
        fig["cm"](test_labels, test_predictions)
        curves.extend([(f"Train {name}", train_labels, train_predictions, "-"),
                       (f"Test {name}", test_labels, test_predictions, "--")])
        phase("figures")

    model = make_model(n_features)
    model.load_weights(initial_weights)
    baseline_history = fit("baseline", model, train_features, train_labels,
                           batch_size=BATCH_SIZE, epochs=epochs, callbacks=[early_stopping],
                           validation_data=(val_features, val_labels))
    phase("baseline_fit")
    report("baseline", model, baseline_history)

    weight_for_0 = (1 / neg) * (total / 2.0)
    weight_for_1 = (1 / pos) * (total / 2.0)
    class_weight = {0: weight_for_0, 1: weight_for_1}
    weighted_model = make_model(n_features)
    weighted_model.load_weights(initial_weights)
    weighted_history = fit("weighted", weighted_model, train_features, train_labels,
                           batch_size=BATCH_SIZE, epochs=epochs, callbacks=[early_stopping],
                           validation_data=(val_features, val_labels),
                           class_weight=class_weight)
    phase("weighted_fit")
    report("weighted", weighted_model, weighted_history)

    resampled_ds = resampled_dataset(train_features, train_labels)
    neg_train = int((~bool_train_labels).sum())
    resampled_steps_per_epoch = math.ceil(2.0 * neg_train / BATCH_SIZE)
    resampled_model = make_model(n_features)
    resampled_model.load_weights(initial_weights)
    output_layer = resampled_model.layers[-1]
    output_layer.bias.assign([0])
    val_ds = val_dataset(val_features, val_labels)
    resampled_history = fit("oversample", resampled_model, resampled_ds, epochs=epochs,
                            steps_per_epoch=resampled_steps_per_epoch,
                            callbacks=[early_stopping], validation_data=val_ds)
    phase("oversample_fit")
    report("oversample", resampled_model, resampled_history)
    fig["curves"](curves)
    phase("figures")
    del tf
    return {"phases": phases, "epoch_seconds": epoch_seconds, "test_metrics": results,
            "epochs": epochs, "compare_epochs": compare_epochs,
            "oversample_steps_per_epoch": resampled_steps_per_epoch,
            "rows": int(total), "in_process_s": sum(phases.values())}


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
