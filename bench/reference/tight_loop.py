"""The reference paths of the per-epoch measurement (`python -m bench.inprocess epochs`), run
on a finished project copy's splits. Frozen reference code (see bench/reference/__init__.py):
it differs from src/ on purpose.

  * `tutorial_epochs`: the tutorial's `fit` call for one strategy (numpy arrays, batch 2048,
    one step per call; the per-element `sample_from_datasets` oversampler over shuffled,
    repeated per-class datasets), from tutorial.py's training cells;
  * `floor_epochs`: one `tf.function` running the whole epoch (data on the device, the
    pipeline's model and initial weights, Adam, its batches, loss only) plus the validation
    loss: what Keras' per-step machinery and metrics cost on top of the arithmetic. Its
    balanced draw is written out inside the loop (same keys as src/fraud/training/fit.py's
    `balanced_batches`, restarted each epoch) so that it stays a bare loop.

Both return the wall seconds of each epoch; bench/inprocess.py summarises them.
"""

from __future__ import annotations

import time

from bench.reference import tutorial


def tutorial_epochs(strategy: str, train, val, epochs: int, initial_weights: str
                    ) -> tuple[list[float], float]:
    """The tutorial's fit for one strategy (tutorial.py runs the whole notebook): each epoch's
    seconds, and the whole fit call's (datasets included)."""
    neg, pos = int((train[1] == 0).sum()), int((train[1] == 1).sum())
    model = tutorial.make_model(train[0].shape[1], tutorial.metrics())
    model.load_weights(initial_weights)
    timer = tutorial.EpochTimes()
    callbacks = [tutorial.early_stopping(epochs), timer]
    y = train[1].reshape(-1, 1)
    vy = val[1].reshape(-1, 1)
    start = time.perf_counter()
    if strategy == "oversample":
        tutorial.fit_resampled(model, tutorial.resampled_dataset(train[0], y),
                               tutorial.resampled_steps(neg), (val[0], vy), epochs, callbacks)
    else:
        weights = tutorial.class_weight(neg, pos) if strategy == "weighted" else None
        tutorial.fit_on_arrays(model, (train[0], y), (val[0], vy), epochs, callbacks, weights)
    return timer.seconds, time.perf_counter() - start


# --- the floor: one tf.function per epoch ----------------------------------------------------

def _floor_model(n_features: int, params, initial_weights: str):
    """The pipeline's model with the initial weights, Adam built up front, the loss, and one
    training step (loss only)."""
    from fraud.training import network as keras_model

    tf, keras = keras_model.tf, keras_model.keras
    keras_model.set_determinism(params.seed)
    model = keras_model.make_model(n_features, params.model)
    model.load_weights(initial_weights)
    optimizer = keras.optimizers.Adam(learning_rate=params.model.learning_rate)
    optimizer.build(model.trainable_variables)  # no variables may be created in the loop
    loss_fn = keras.losses.BinaryCrossentropy()

    def step(xb, yb, wb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, model(xb, training=True), sample_weight=wb)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        return loss

    return model, loss_fn, step


def _balanced_batch(positives, negatives, batch: int, seed: int, i):
    """Batch `i` of an oversampling epoch: each row a fraud with probability ½."""
    from fraud.training.network import tf

    key = tf.stack([tf.constant(seed, tf.int64), tf.cast(i, tf.int64) * 3])
    fraud = tf.random.stateless_uniform([batch], seed=key) < 0.5
    pos_rows = tf.random.stateless_uniform(
        [batch], seed=key + [0, 1], maxval=positives.shape[0], dtype=tf.int32)
    neg_rows = tf.random.stateless_uniform(
        [batch], seed=key + [0, 2], maxval=negatives.shape[0], dtype=tf.int32)
    xb = tf.where(fraud[:, None], tf.gather(positives, pos_rows), tf.gather(negatives, neg_rows))
    return xb, tf.cast(fraud[:, None], tf.float32), None


def floor_epochs(strategy: str, params, train, val, epochs: int, initial_weights: str
                 ) -> list[float]:
    from fraud.training import fit as training
    from fraud.training.network import tf

    batch = params.train.batch_size
    model, loss_fn, step = _floor_model(train[0].shape[1], params, initial_weights)
    x = tf.constant(train[0])
    y = tf.constant(train[1].reshape(-1, 1))
    vx = tf.constant(val[0])
    vy = tf.constant(val[1].reshape(-1, 1))
    rows = int(x.shape[0])
    weights = training.class_weights(train[1])
    row_weight = tf.where(y[:, 0] > 0.5, weights[1], weights[0])
    if strategy == "oversample":
        model.layers[-1].bias.assign([0.0])
        steps = (params.train.oversample_steps_per_epoch
                 or training.oversample_steps(train[1], batch))
        positives = tf.constant(train[0][train[1] == 1])
        negatives = tf.constant(train[0][train[1] == 0])
    else:
        steps = training.steps_for(rows, batch)

    @tf.function
    def epoch(number):
        total = tf.constant(0.0)
        order = tf.random.experimental.stateless_shuffle(
            tf.range(rows), seed=tf.stack([tf.constant(params.seed, tf.int64), number]))
        for i in tf.range(steps):
            if strategy == "oversample":
                xb, yb, wb = _balanced_batch(positives, negatives, batch, params.seed, i)
            else:
                rows_i = order[i * batch:tf.minimum((i + 1) * batch, rows)]
                xb, yb = tf.gather(x, rows_i), tf.gather(y, rows_i)
                wb = tf.gather(row_weight, rows_i) if strategy == "weighted" else None
            total += step(xb, yb, wb)
        val_loss = loss_fn(vy, model(vx, training=False))
        return total / tf.cast(steps, tf.float32), val_loss

    seconds = []
    for number in range(epochs):
        start = time.perf_counter()
        _, val_loss = epoch(tf.constant(number, tf.int64))
        float(val_loss)
        seconds.append(time.perf_counter() - start)
    return seconds
