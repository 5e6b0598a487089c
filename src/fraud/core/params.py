"""params.yaml, read once, typed and validated.

Every stage calls `load_params()`; nothing else reads params.yaml. Values are cast
explicitly because `dvc exp run -S clean.eps=1e-8` writes `1e-08`, which YAML reads as a
string. A bad value fails with its dotted name, the value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import PipelineError, printable, printable_names
from ..kinds.base import Checks
from ..kinds.registry import all_kinds
from .declaration import (
    CREDIT_CARD,
    CREDIT_CARD_LAYOUT,
    TRANSACTIONS,
    TRANSACTIONS_CATEGORICAL,
    DataDeclaration,
    HistorySpec,
    parse_data,
)
from .models import AUTO, MODELS, STRATEGY_ALIASES

PARAMS_FILE = "params.yaml"
SYNTHETIC_SOURCE = "synthetic"
# download.url: transactions generates raw card transactions (src/fraud/data/transactions.py).
TRANSACTIONS_SOURCE = "transactions"
GENERATED_SOURCES = (SYNTHETIC_SOURCE, TRANSACTIONS_SOURCE)
THRESHOLD_RULES = ("target_recall", "min_cost", "expected_cost")
# calibrate.method: how evaluate_model maps a model's logit to a fraud probability (fitted on
# validation; src/fraud/evaluation/calibration.py), or `auto` to choose among them there.
CALIBRATION_METHODS = ("none", "prior", "platt", "isotonic")
CALIBRATION_AUTO = "auto"
SPLIT_METHODS = ("stratified", "random", "time")
# What `evaluate.select_by` may rank candidates on (validation, exact) and which way is better.
SELECT_BY = {"val_prc": "max", "val_auc": "max", "val_cost": "min"}
# What a fit logs each epoch (fit.py): the training loss, and on the validation split the loss
# and every metric of network.make_metrics(); `train.monitor` must be one of these.
MONITORABLE = ("loss", *(
    f"val_{name}"
    for name in ("loss", "cross_entropy", "brier", "tp", "fp", "tn", "fn", "accuracy",
                 "precision", "recall", "auc", "prc")
), "val_ap")  # exact average precision on the whole validation split


# The largest value of each number that costs time or memory as it grows, checked before any
# work: each keeps a run within this machine class (2 cores, 24 GB) and a sane time, at several
# times what anyone has needed. Without them, `model.hidden_units: 1e8` ran TensorFlow out of
# memory, `gbdt.min_samples_leaf: 1e30` overflowed, and 1e9 steps or epochs ran for ever.
UPPER_BOUNDS: dict[str, float] = {
    "download.timeout": 3_600,             # seconds without data
    "download.retries": 10,
    "download.deadline": 86_400,           # a day for the whole download
    "download.max_bytes": 1 << 34,         # 16 GiB (the real CSV: 150 MB)
    "download.synthetic_rows": 5_000_000,  # ~17x the real data: ~1.2 GB of float64 in memory
    "model.hidden_units": 4_096,           # the tutorial's network has 16
    "init_bias.compare_epochs": 1_000,
    "train.epochs": 10_000,
    "train.batch_size": 1 << 20,
    "train.patience": 10_000,
    "train.oversample_steps_per_epoch": 100_000,  # the real data's epoch is 178 steps
    "evaluate.batch_size": 1 << 20,
    "evaluate.curve_points": 100_000,
    "evaluate.bootstrap": 100_000,
    "calibrate.folds": 100,                # one fit per fold and method
    "calibrate.bins": 10_000,
}
# The largest value of each number that would overflow a computation long before it exhausts
# anything: the reason is part of the message. `model.learning_rate: 1e300` passed and made
# init_bias' losses NaN (a traceback, after DVC had deleted its git-tracked outputs).
OVERFLOW_BOUNDS: dict[str, tuple[float, str]] = {
    "model.learning_rate": (1.0, "Adam's steps overflow the weights to NaN; 0.001 is usual"),
    "clean.eps": (1_000.0, "log(amount + eps) would hide the amount's variation"),
    "evaluate.cost_fp": (1e12, "costs summed over the test split would overflow"),
    "evaluate.cost_fn": (1e12, "costs summed over the test split would overflow"),
}
# A model kind's own params are bounded in its module (src/fraud/kinds).
for _kind in all_kinds():
    UPPER_BOUNDS.update(_kind.upper_bounds)
    OVERFLOW_BOUNDS.update(_kind.overflow_bounds)
# The marker of an interpolation: DVC resolves ${...} (OmegaConf) when it applies
# `dvc exp run -S`, for the whole of params.yaml, so `${oc.env:SECRET}` would be written out.
INTERPOLATION = "${"


@dataclass(frozen=True)
class DownloadParams:
    url: str
    sha256: str | None
    timeout: float
    retries: int
    synthetic_rows: int
    synthetic_fraud_rate: float
    # Not `seed`: the data must stay the same when `seed` varies the split and training
    # (and the download stage must not rerun for every seed).
    synthetic_seed: int
    # Bounds on a download, whatever the server does: `timeout` alone lets a server that
    # trickles a byte at a time run forever. Seconds for all attempts and waits together,
    # and bytes both fetched and unpacked (a zip bomb); generated data is not bounded.
    deadline: float
    max_bytes: int

    @property
    def raw_sha256(self) -> str | None:
        """The checksum the raw CSV must have (clean checks it): none for generated data."""
        return None if self.url in GENERATED_SOURCES else self.sha256


@dataclass(frozen=True)
class TransactionsParams:
    """The transaction simulator's size and seed (download.url: transactions); the
    handbook's published size is the default."""
    customers: int = 5_000
    terminals: int = 10_000
    days: int = 183
    start: str = "2018-04-01"  # the first day
    radius: float = 5.0        # a customer uses the terminals within it (grid 100 x 100)
    seed: int = 0              # its own: `seed` varies split and training, not data
    categorical: bool = False  # merchant_category, country, channel (transactions.py)


# customers x days bounds the simulator's memory: ~4 transactions per cell at most, ~60 bytes
# each while generated (the handbook's 915,000 cells: 1.8 M transactions, ~0.4 GB peak).
MAX_SIMULATED_CELLS = 10_000_000


@dataclass(frozen=True)
class CleanParams:
    eps: float


@dataclass(frozen=True)
class FeaturesParams:
    """The features stage's (src/fraud/data/history.py) memory bound. What it adds is part of
    the declaration, `Params.data.history`: scoring and the layouts read it there too."""
    memory_mb: int = 2048     # DuckDB's memory limit; beyond it, it spills to disk


FEATURES_KEYS = ("windows", "delay", "spending", "risk", "time_flags", "memory_mb")
MAX_WINDOW_DAYS = 366


@dataclass(frozen=True)
class SplitParams:
    method: str               # stratified | random | time
    group_duplicates: bool    # rows with identical inputs go to the same split
    test_size: float
    val_size: float
    # A time split by whole days (None: by the fractions): the last test_days days are test,
    # the val_days before them (a gap of features.delay days between) val, train before.
    test_days: int | None = None
    val_days: int | None = None
    train_days: int | None = None   # None: every earlier day
    # Val / test leave out the cards with a fraud in the known_fraud_days before the delay
    # (labels known by the row's day: blocked cards); None keeps them.
    known_fraud_days: int | None = None
    # Prequential (walk-forward) validation: fold k moves the train and val windows back by
    # k x val_days days; test stays (only fold 0's test is ever reported). 0: the usual split.
    fold: int = 0


@dataclass(frozen=True)
class ScaleParams:
    clip: float


@dataclass(frozen=True)
class ModelParams:
    hidden_units: int
    dropout: float
    learning_rate: float


@dataclass(frozen=True)
class InitBiasParams:
    compare_epochs: int


@dataclass(frozen=True)
class TrainParams:
    strategy: str
    epochs: int
    batch_size: int
    patience: int
    monitor: str
    oversample_steps_per_epoch: int | None


@dataclass(frozen=True)
class EvaluateParams:
    threshold: float | str
    target_recall: float
    cost_fp: float
    cost_fn: float | str
    batch_size: int
    curve_points: int
    candidates: tuple[str, ...]  # models train.strategy: auto chooses among
    select_by: str               # the validation figure it chooses on
    bootstrap: int               # resamples of the test split for 95 % intervals
    card_precision_k: int = 100  # Card Precision@k: cards checked a day (tables with entities)


@dataclass(frozen=True)
class CalibrateParams:
    method: str  # one of CALIBRATION_METHODS or CALIBRATION_AUTO
    folds: int   # auto's cross-fitting folds inside the validation split
    bins: int    # equal-width bins of the expected calibration error


@dataclass(frozen=True)
class Params:
    seed: int
    download: DownloadParams
    clean: CleanParams
    split: SplitParams
    scale: ScaleParams
    model: ModelParams
    init_bias: InitBiasParams
    train: TrainParams
    evaluate: EvaluateParams
    calibrate: CalibrateParams
    data: DataDeclaration = CREDIT_CARD  # the table's columns (declaration.py)
    transactions: TransactionsParams = TransactionsParams()
    features: FeaturesParams = FeaturesParams()
    # The model kinds' sections (`logreg`, `gbdt`, ...), as each kind's parser returns them.
    kind_sections: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        """A kind's section reads as the fixed ones do: `params.logreg.class_weight`."""
        sections = self.__dict__.get("kind_sections", {})
        if name in sections:
            return sections[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")


def _fail(name: str, value: Any, allowed: str) -> PipelineError:
    return PipelineError(f"params.yaml: {name} = {printable(value)} is invalid: expected {allowed}")


def _as_float(name: str, value: Any) -> float:
    """A finite number, at most UPPER_BOUNDS[name] where the param has a bound."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise _fail(name, value, "a number")
    try:
        result = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int of 400 digits
        raise _fail(name, value, "a number") from None
    if not math.isfinite(result):
        raise _fail(name, value, "a finite number")
    high = UPPER_BOUNDS.get(name)
    if high is not None and result > high:
        raise _fail(name, value, f"at most {int(high):,} (a larger value would exhaust this "
                                 "machine's memory or time)")
    if name in OVERFLOW_BOUNDS and abs(result) > OVERFLOW_BOUNDS[name][0]:
        limit, reason = OVERFLOW_BOUNDS[name]
        raise _fail(name, value, f"at most {limit:g} ({reason})")
    return result


def _as_int(name: str, value: Any) -> int:
    number = _as_float(name, value)
    if number != int(number):
        raise _fail(name, value, "a whole number")
    return int(number)


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise _fail(name, value, "true or false")


def _as_str(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(name, value, "a non-empty string")
    return value.strip()


def _check(name: str, value: Any, ok: bool, allowed: str) -> None:
    if not ok:
        raise _fail(name, value, allowed)


def check_monitor(monitor: str) -> None:
    """`train.monitor` must be a value the model logs each epoch (MONITORABLE)."""
    _check("train.monitor", monitor, monitor in MONITORABLE, "one of " + ", ".join(MONITORABLE))


def _section(raw: dict[str, Any], name: str, cls: type) -> dict[str, Any]:
    section = raw.get(name)
    if not isinstance(section, dict):
        raise PipelineError(f"params.yaml: section '{name}' is missing or not a mapping")
    expected = {f.name for f in fields(cls)}
    unknown = sorted(map(str, set(section) - expected))  # str: YAML keys may be numbers
    if unknown:
        raise PipelineError(
            f"params.yaml: unknown key(s) {printable_names([f'{name}.{k}' for k in unknown])}; "
            f"'{name}' takes {', '.join(sorted(expected))}")
    missing = sorted(expected - set(section))
    if missing:
        raise PipelineError(
            f"params.yaml: missing key(s) {', '.join(f'{name}.{k}' for k in missing)}")
    return section


def normalise_strategy(value: Any, name: str = "train.strategy",
                       allowed: tuple[str, ...] = MODELS) -> str:
    """One of `allowed` (train.strategy: any model, since every model ships; the --strategy
    of src/stages/train.py: a Keras one). `resampled` is accepted for `oversample` (the stage is
    called train_resampled)."""
    text = STRATEGY_ALIASES.get(value.strip().lower(), value.strip().lower()) \
        if isinstance(value, str) else None
    if text not in allowed:
        raise _fail(name, value, "one of " + ", ".join((AUTO,) + allowed
                                                        + tuple(STRATEGY_ALIASES)))
    return text


def _as_choice(name: str, value: Any, choices: Sequence[str], lower: bool = False) -> str:
    """One of `choices`, surrounding spaces ignored (and case, with `lower`)."""
    text = value.strip() if isinstance(value, str) else value
    text = text.lower() if lower and isinstance(text, str) else text
    _check(name, value, isinstance(text, str) and text in choices, "one of " + ", ".join(choices))
    return text


def _split_params(s: dict[str, Any]) -> SplitParams:
    method = _as_choice("split.method", s["method"], SPLIT_METHODS, lower=True)
    split = SplitParams(method=method,
                        group_duplicates=_as_bool("split.group_duplicates", s["group_duplicates"]),
                        test_size=_as_float("split.test_size", s["test_size"]),
                        val_size=_as_float("split.val_size", s["val_size"]),
                        test_days=_days("split.test_days", s["test_days"], 1, optional=True),
                        val_days=_days("split.val_days", s["val_days"], 1, optional=True),
                        train_days=_days("split.train_days", s["train_days"], 1, optional=True),
                        known_fraud_days=_days("split.known_fraud_days",
                                               s["known_fraud_days"], 1, optional=True),
                        fold=_as_int("split.fold", s["fold"]))
    by_days = (split.test_days, split.val_days, split.train_days)
    if any(d is not None for d in (*by_days, split.known_fraud_days)):
        _check("split.method", s["method"], method == "time",
               "time (split.test_days, val_days, train_days and known_fraud_days are for a "
               "time split)")
    if split.train_days is not None or (split.test_days is None) != (split.val_days is None):
        _check("split.test_days", s["test_days"],
               split.test_days is not None and split.val_days is not None,
               "a number of days with split.val_days (both, or neither: by fractions)")
    _check("split.fold", s["fold"], 0 <= split.fold <= MAX_WINDOW_DAYS,
           f"a whole number from 0 to {MAX_WINDOW_DAYS} (0: the usual split)")
    if split.fold > 0:
        _check("split.fold", s["fold"], method == "time" and split.val_days is not None,
               "0 unless the split is by days (split.method: time with split.test_days and "
               "split.val_days set): a fold moves the validation window back by val_days")
    _check("split.test_size", s["test_size"], 0 < split.test_size < 1,
           "a fraction strictly between 0 and 1")
    _check("split.val_size", s["val_size"], 0 < split.val_size < 1,
           "a fraction strictly between 0 and 1 (of what remains after the test split)")
    return split


def _as_names(name: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A YAML list or a comma-separated string of names (`-S evaluate.candidates=a,b`)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or len(items) > len(allowed):
        raise _fail(name, value, "a non-empty list of " + ", ".join(allowed))
    names = tuple(STRATEGY_ALIASES.get(item.strip().lower(), item.strip().lower())
                  if isinstance(item, str) else "" for item in items)
    bad = [item for item in names if item not in allowed]
    _check(name, value, not bad and len(set(names)) == len(names),
           "a list of distinct names among " + ", ".join(allowed))
    return names


def _evaluate_selection(e: dict[str, Any]) -> dict[str, Any]:
    """evaluate.candidates / select_by / bootstrap: what `train.strategy: auto` chooses
    among, on which validation figure, and how many resamples the test intervals use."""
    select_by = _as_choice("evaluate.select_by", e["select_by"], tuple(SELECT_BY))
    bootstrap = _as_int("evaluate.bootstrap", e["bootstrap"])
    _check("evaluate.bootstrap", e["bootstrap"], 100 <= bootstrap <= 100_000,
           "a whole number of resamples from 100 to 100000")
    return {"candidates": _as_names("evaluate.candidates", e["candidates"], MODELS),
            "select_by": select_by, "bootstrap": bootstrap}


def _refuse_interpolation(node: Any, path: str = "") -> None:
    """No `${...}` anywhere: DVC resolves interpolations in the whole file when it applies an
    experiment's `-S`, so `${oc.env:AWS_SECRET_ACCESS_KEY}` would land, resolved, in
    params.yaml and the experiment's commit."""
    items = node.items() if isinstance(node, dict) else enumerate(node) \
        if isinstance(node, list) else ()
    for key, value in items:
        dotted = f"{path}[{key}]" if isinstance(node, list) else \
            f"{path}.{key}" if path else str(key)
        if isinstance(value, str) and INTERPOLATION in value or \
                isinstance(key, str) and INTERPOLATION in key:
            raise PipelineError(f"params.yaml: {printable(dotted)[1:-1]} holds an interpolation "
                                f"({printable(value, 60)}); DVC would resolve it (an "
                                "environment variable's value, for ${oc.env:…}) into "
                                "params.yaml and the experiment's commit: write the value "
                                "itself")
        _refuse_interpolation(value, dotted)


# A model kind's parser (src/fraud/kinds) checks its section with these, as the fixed ones are.
_CHECKS = Checks(section=_section, fail=_fail, require=_check, as_float=_as_float,
                 as_int=_as_int, as_choice=_as_choice)


def parse_params(raw: Any) -> Params:
    """Validates the content of params.yaml; raises PipelineError naming the bad key."""
    if not isinstance(raw, dict):
        raise PipelineError("params.yaml: expected a mapping of sections at the top level")
    _refuse_interpolation(raw)
    sections = [f.name for f in fields(Params) if f.name not in ("data", "kind_sections")]
    sections += [*(kind.section for kind in all_kinds() if kind.section), "data"]
    unknown = sorted(map(str, set(raw) - set(sections)))  # str: YAML keys may be numbers
    if unknown:
        raise PipelineError(f"params.yaml: unknown key(s) {printable_names(unknown)}; "
                            f"top-level keys are {', '.join(sections)}")
    if "seed" not in raw:
        raise PipelineError("params.yaml: missing key 'seed'")
    seed = _as_int("seed", raw["seed"])
    _check("seed", seed, 0 <= seed < 2**32, "a whole number from 0 to 2**32 - 1")
    # Section by section, in this order: the first bad key is the one reported.
    data = parse_data(raw.get("data"))
    transactions = _transactions_params(raw.get("transactions"))
    history, features = _features_params(raw.get("features"), data)
    data = data.with_history(history)
    params = Params(seed=seed,
                  download=_download_params(_section(raw, "download", DownloadParams)),
                  clean=_clean_params(_section(raw, "clean", CleanParams)),
                  split=_split_params(_section(raw, "split", SplitParams)),
                  scale=_scale_params(_section(raw, "scale", ScaleParams)),
                  model=_model_params(_section(raw, "model", ModelParams)),
                  init_bias=_init_bias_params(_section(raw, "init_bias", InitBiasParams)),
                  train=_train_params(_section(raw, "train", TrainParams)),
                  evaluate=_evaluate_params(_section(raw, "evaluate", EvaluateParams)),
                  calibrate=_calibrate_params(_section(raw, "calibrate", CalibrateParams)),
                  data=data, transactions=transactions, features=features,
                  kind_sections={kind.section: kind.parse(raw, _CHECKS) for kind in all_kinds()
                                 if kind.section and kind.parse})
    _check_data_against(params)
    return params


def _check_data_against(params: Params) -> None:
    """What the declaration rules out elsewhere in the file."""
    if params.download.url == SYNTHETIC_SOURCE and not params.data.describes(CREDIT_CARD_LAYOUT):
        raise PipelineError("params.yaml: download.url = 'synthetic' generates the Credit Card "
                            "Fraud table, but the data: section declares another one; point "
                            "download.url at your table's file, or remove the data: section")
    simulated = (TRANSACTIONS_CATEGORICAL if params.transactions.categorical
                 else TRANSACTIONS).layout(())
    if params.download.url == TRANSACTIONS_SOURCE and not params.data.describes(simulated):
        raise PipelineError("params.yaml: download.url = 'transactions' generates the card "
                            "transactions table (" + ", ".join(simulated.raw_columns)
                            + "), but the data: section declares another; declare that one "
                            "(docs/your-data.md)")
    if params.split.known_fraud_days is not None and not params.data.entities:
        raise PipelineError("params.yaml: split.known_fraud_days needs a card: the first of "
                            "data.entities, and none is declared; declare it, or leave it empty")
    if params.evaluate.cost_fn == "amount" and params.data.amount is None:
        raise PipelineError("params.yaml: evaluate.cost_fn = 'amount' needs an amount column, "
                            "and data.amount is null; declare it, or give cost_fn a number")


def _days(name: str, value: Any, low: int, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    days = _as_int(name, value)
    _check(name, value, low <= days <= MAX_WINDOW_DAYS,
           f"a whole number of days from {low} to {MAX_WINDOW_DAYS}"
           + (", or null" if optional else ""))
    return days


def _entities(name: str, value: Any, data: DataDeclaration) -> tuple[str, ...]:
    """Entities of data.entities, as a list or `a,b` (`-S features.risk=terminal_id`)."""
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        raise _fail(name, value, "a list of columns of data.entities")
    names = tuple(item.strip() if isinstance(item, str) else item for item in items)
    _check(name, value, all(n in data.entities for n in names) and len(set(names)) == len(names),
           "distinct columns of data.entities (" + (", ".join(data.entities) or "none declared")
           + ")")
    return names


def _features_params(section: Any, data: DataDeclaration
                     ) -> tuple[HistorySpec, FeaturesParams]:
    """Section `features` (optional: nothing added without it): the history features, for
    the declaration, and the stage's own settings."""
    if section is None:
        return HistorySpec(), FeaturesParams()
    if not isinstance(section, dict):
        raise PipelineError("params.yaml: section 'features' is not a mapping")
    unknown = sorted(map(str, set(section) - set(FEATURES_KEYS)))
    missing = [k for k in FEATURES_KEYS if k not in section]
    if unknown or missing:
        raise PipelineError(f"params.yaml: {'unknown' if unknown else 'missing'} key(s) "
                            + printable_names([f"features.{k}" for k in unknown or missing])
                            + f"; 'features' takes {', '.join(FEATURES_KEYS)}")
    windows = section["windows"]
    windows = windows.split(",") if isinstance(windows, str) else windows or []
    if not isinstance(windows, list):
        raise _fail("features.windows", section["windows"], "a list of days (1, 7, 30)")
    days = tuple(_days(f"features.windows[{i}]", w, 1) or 0 for i, w in enumerate(windows))
    _check("features.windows", section["windows"], len(set(days)) == len(days),
           "distinct numbers of days")
    spec = HistorySpec(windows=days, delay=_days("features.delay", section["delay"], 0) or 0,
                       spending=_entities("features.spending", section["spending"], data),
                       risk=_entities("features.risk", section["risk"], data),
                       time_flags=_as_bool("features.time_flags", section["time_flags"]))
    memory = _as_int("features.memory_mb", section["memory_mb"])
    _check("features.memory_mb", section["memory_mb"], 64 <= memory <= 1_000_000,
           "megabytes from 64 to 1000000")
    if (spec.spending or spec.risk) and not spec.windows:
        raise _fail("features.windows", section["windows"], "at least one window (days) for "
                    "features.spending / features.risk")
    if spec.active and data.time is None:
        raise PipelineError("params.yaml: the features: section needs a time column, and "
                            "data.time is null; declare it, or empty features:")
    if spec.spending and data.amount is None:
        raise PipelineError("params.yaml: features.spending profiles the amount, and "
                            "data.amount is null; declare it, or empty features.spending")
    return spec, FeaturesParams(memory_mb=memory)


def _transactions_params(section: Any) -> TransactionsParams:
    """Section `transactions` (optional: the handbook's size without it)."""
    if section is None:
        return TransactionsParams()
    t = _section({"transactions": section}, "transactions", TransactionsParams)
    start = t["start"]
    start = start.isoformat() if hasattr(start, "isoformat") else start
    result = TransactionsParams(
        customers=_as_int("transactions.customers", t["customers"]),
        terminals=_as_int("transactions.terminals", t["terminals"]),
        days=_as_int("transactions.days", t["days"]),
        start=_as_str("transactions.start", start),
        radius=_as_float("transactions.radius", t["radius"]),
        seed=_as_int("transactions.seed", t["seed"]),
        categorical=_as_bool("transactions.categorical", t["categorical"]))
    for key in ("customers", "terminals", "days"):
        _check(f"transactions.{key}", t[key], getattr(result, key) >= 1, "a whole number >= 1")
    _check("transactions.customers", t["customers"],
           result.customers * result.days <= MAX_SIMULATED_CELLS,
           f"at most {MAX_SIMULATED_CELLS:,} customers x days in all (memory)")
    _check("transactions.terminals", t["terminals"], result.terminals <= 1_000_000,
           "at most 1,000,000")
    _check("transactions.radius", t["radius"], 0 < result.radius <= 150,
           "a distance in (0, 150] on the 100 x 100 grid")
    _check("transactions.seed", t["seed"], 0 <= result.seed < 2**32,
           "a whole number from 0 to 2**32 - 1")
    _check("transactions.start", t["start"], _is_date(result.start),
           "a date, YYYY-MM-DD")
    return result


def _is_date(text: str) -> bool:
    import datetime

    try:
        datetime.date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10


def _download_params(d: dict[str, Any]) -> DownloadParams:
    sha = d["sha256"]
    if sha is not None:
        sha = _as_str("download.sha256", sha).lower()
        _check("download.sha256", sha, len(sha) == 64 and all(c in "0123456789abcdef" for c in sha),
               "64 hexadecimal characters, or null to skip the check")
    download = DownloadParams(
        url=_as_str("download.url", d["url"]),
        sha256=sha,
        timeout=_as_float("download.timeout", d["timeout"]),
        retries=_as_int("download.retries", d["retries"]),
        synthetic_rows=_as_int("download.synthetic_rows", d["synthetic_rows"]),
        synthetic_fraud_rate=_as_float("download.synthetic_fraud_rate", d["synthetic_fraud_rate"]),
        synthetic_seed=_as_int("download.synthetic_seed", d["synthetic_seed"]),
        deadline=_as_float("download.deadline", d["deadline"]),
        max_bytes=_as_int("download.max_bytes", d["max_bytes"]),
    )
    _check("download.timeout", download.timeout, download.timeout > 0, "a number of seconds > 0")
    _check("download.retries", download.retries, download.retries >= 0, "a whole number >= 0")
    _check("download.deadline", d["deadline"], download.deadline > 0,
           "a number of seconds > 0 (all attempts together)")
    _check("download.max_bytes", d["max_bytes"], download.max_bytes >= 1,
           "a whole number of bytes >= 1")
    _check("download.synthetic_rows", download.synthetic_rows, download.synthetic_rows >= 100,
           "a whole number >= 100")
    _check("download.synthetic_seed", download.synthetic_seed,
           0 <= download.synthetic_seed < 2**32, "a whole number from 0 to 2**32 - 1")
    _check("download.synthetic_fraud_rate", download.synthetic_fraud_rate,
           0 < download.synthetic_fraud_rate < 0.5, "a fraction between 0 and 0.5")
    return download


def _clean_params(c: dict[str, Any]) -> CleanParams:
    clean = CleanParams(eps=_as_float("clean.eps", c["eps"]))
    _check("clean.eps", c["eps"], clean.eps > 0, "a number > 0 (log(amount + eps) needs it)")
    return clean


def _scale_params(sc: dict[str, Any]) -> ScaleParams:
    scale = ScaleParams(clip=_as_float("scale.clip", sc["clip"]))
    _check("scale.clip", sc["clip"], scale.clip > 0, "a number > 0 (features are clipped to ±clip)")
    return scale


def _model_params(m: dict[str, Any]) -> ModelParams:
    model = ModelParams(hidden_units=_as_int("model.hidden_units", m["hidden_units"]),
                        dropout=_as_float("model.dropout", m["dropout"]),
                        learning_rate=_as_float("model.learning_rate", m["learning_rate"]))
    _check("model.hidden_units", m["hidden_units"], model.hidden_units >= 1, "a whole number >= 1")
    _check("model.dropout", m["dropout"], 0 <= model.dropout < 1, "a number in [0, 1)")
    _check("model.learning_rate", m["learning_rate"], model.learning_rate > 0, "a number > 0")
    return model


def _init_bias_params(ib: dict[str, Any]) -> InitBiasParams:
    init_bias = InitBiasParams(compare_epochs=_as_int("init_bias.compare_epochs",
                                                      ib["compare_epochs"]))
    _check("init_bias.compare_epochs", ib["compare_epochs"], init_bias.compare_epochs >= 1,
           "a whole number >= 1")
    return init_bias


def _train_params(t: dict[str, Any]) -> TrainParams:
    steps = t["oversample_steps_per_epoch"]
    train = TrainParams(
        strategy=(AUTO if isinstance(t["strategy"], str) and t["strategy"].strip().lower() == AUTO
                  else normalise_strategy(t["strategy"])),
        epochs=_as_int("train.epochs", t["epochs"]),
        batch_size=_as_int("train.batch_size", t["batch_size"]),
        patience=_as_int("train.patience", t["patience"]),
        monitor=_as_str("train.monitor", t["monitor"]),
        oversample_steps_per_epoch=(None if steps is None or steps == "null"
                                    else _as_int("train.oversample_steps_per_epoch", steps)),
    )
    _check("train.epochs", t["epochs"], train.epochs >= 1, "a whole number >= 1")
    _check("train.batch_size", t["batch_size"], train.batch_size >= 1, "a whole number >= 1")
    _check("train.patience", t["patience"], train.patience >= 0, "a whole number >= 0")
    check_monitor(train.monitor)
    _check("train.oversample_steps_per_epoch", steps,
           train.oversample_steps_per_epoch is None or train.oversample_steps_per_epoch >= 1,
           "null (each negative once per epoch) or a whole number >= 1")
    return train


def _evaluate_threshold(value: Any) -> float | str:
    """A probability in (0, 1), or the name of a rule that chooses one on validation."""
    if isinstance(value, str) and value.strip() in THRESHOLD_RULES:
        return value.strip()
    allowed = "a number in (0, 1) or one of " + ", ".join(THRESHOLD_RULES)
    try:
        threshold = _as_float("evaluate.threshold", value)
    except PipelineError:
        raise _fail("evaluate.threshold", value, allowed) from None
    _check("evaluate.threshold", value, 0 < threshold < 1, allowed)
    return threshold


def _evaluate_cost_fn(value: Any) -> float | str:
    if isinstance(value, str) and value.strip() == "amount":
        return "amount"
    cost_fn = _as_float("evaluate.cost_fn", value)
    _check("evaluate.cost_fn", value, cost_fn >= 0,
           "a number >= 0, or 'amount' (a missed fraud costs its amount)")
    return cost_fn


def _evaluate_params(e: dict[str, Any]) -> EvaluateParams:
    threshold = _evaluate_threshold(e["threshold"])
    cost_fn = _evaluate_cost_fn(e["cost_fn"])
    evaluate = EvaluateParams(
        threshold=threshold,
        target_recall=_as_float("evaluate.target_recall", e["target_recall"]),
        cost_fp=_as_float("evaluate.cost_fp", e["cost_fp"]),
        cost_fn=cost_fn,
        batch_size=_as_int("evaluate.batch_size", e["batch_size"]),
        curve_points=_as_int("evaluate.curve_points", e["curve_points"]),
        card_precision_k=_as_int("evaluate.card_precision_k", e["card_precision_k"]),
        **_evaluate_selection(e),
    )
    _check("evaluate.target_recall", e["target_recall"], 0 < evaluate.target_recall <= 1,
           "a fraction in (0, 1]")
    _check("evaluate.cost_fp", e["cost_fp"], evaluate.cost_fp >= 0, "a number >= 0")
    _check("evaluate.batch_size", e["batch_size"], evaluate.batch_size >= 1, "a whole number >= 1")
    _check("evaluate.curve_points", e["curve_points"], evaluate.curve_points >= 10,
           "a whole number >= 10")
    _check("evaluate.card_precision_k", e["card_precision_k"],
           1 <= evaluate.card_precision_k <= 1_000_000, "a whole number of cards from 1 to "
           "1000000 (checked a day)")
    if threshold in ("min_cost", "expected_cost") and evaluate.cost_fp == 0 and cost_fn == 0:
        raise PipelineError(f"params.yaml: evaluate.threshold = {threshold!r} needs a cost: "
                            "evaluate.cost_fp and evaluate.cost_fn are both 0")
    return evaluate


def _calibrate_params(c: dict[str, Any]) -> CalibrateParams:
    result = CalibrateParams(
        method=_as_choice("calibrate.method", c["method"],
                          (*CALIBRATION_METHODS, CALIBRATION_AUTO), lower=True),
        folds=_as_int("calibrate.folds", c["folds"]),
        bins=_as_int("calibrate.bins", c["bins"]))
    _check("calibrate.folds", c["folds"], result.folds >= 2,
           "a whole number of cross-fitting folds >= 2")
    _check("calibrate.bins", c["bins"], result.bins >= 2, "a whole number of bins >= 2")
    return result


class _StrictLoader(yaml.SafeLoader):
    """YAML's safe loader without two things params.yaml never needs: aliases (a "billion
    laughs" file of a few lines expands to gigabytes when walked: 49 s and 2.9 GB before a
    MemoryError) and duplicate keys (the stages would take the last one; DVC refuses the
    file). Both are refused, with the line."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.MarkedYAMLError(problem="aliases (*name) are not allowed in a params file; "
                                       "write the value out", problem_mark=
                                       self.peek_event().start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = (key_node.tag, key_node.value) if isinstance(key_node, yaml.ScalarNode) \
                else id(key_node)
            if key in seen:
                raise yaml.MarkedYAMLError(problem=f"duplicate key {printable(key_node.value)}",
                                           problem_mark=key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str, label: str) -> Any:
    """params.yaml's text as data, or a one-line PipelineError with the line that is wrong."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = " ".join(part for part in (error.context, error.problem) if part)
        raise PipelineError(f"{label}: not valid YAML: {where}{printable(problem, 200)[1:-1]}"
                            ) from None
    except yaml.YAMLError as error:
        raise PipelineError(f"{label}: not valid YAML: {printable(str(error), 200)}") from None
    except (ValueError, RecursionError) as error:  # an int of 5,000 digits, [[[[...]]]]
        reason = printable(str(error) or type(error).__name__)
        raise PipelineError(f"{label}: not usable YAML ({reason})") from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found; run from the project's root folder") from None
    return parse_params(parse_yaml(text, str(path)))
