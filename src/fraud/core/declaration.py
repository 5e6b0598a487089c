"""The data declaration: which column of the table is the label, the time, an id, an input.

params.yaml's `data:` section says it; `parse_data` checks it (params.py calls it) and
`DataDeclaration.resolve` checks a table's header against it and returns the `Layout` every
stage and the detector work from: the model's raw inputs in order, the features made from
them, the cleaned table's columns. Nothing else in the package names a column.

The Credit Card Fraud data set is the default (`CREDIT_CARD`): params.yaml spells it out,
and a params file without a `data:` section gets it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..errors import PipelineError, printable, printable_names

AUTO = "auto"
TIME_FORMATS = ("auto", "seconds", "iso8601")
# The log feature of the amount column is called "Log <amount>" (the tutorial's "Log Amount").
LOG_PREFIX = "Log "
# Wider tables are possible, but each input costs the Shapley explainer of the trees 2x time
# per flagged row beyond ~20 columns of real effect; 1,000 keeps every report tractable.
MAX_INPUTS = 1_000
DAY_SECONDS = 86_400
KEYS = ("label", "positive", "negative", "time", "time_format", "ids", "entities", "amount",
        "numeric", "categorical", "max_levels", "drop")
# data.max_levels: the default cap on a categorical column's levels (seen in the training split).
# Each level is one more one-hot feature of the network; the trees' native categorical splits
# take at most 255 (scikit-learn's bins), hence the ceiling.
MAX_LEVELS = 50
MAX_LEVELS_CEILING = 255


@dataclass(frozen=True)
class HistorySpec:
    """What the `features` stage adds to each transaction from the history before it
    (params.yaml's `features:` section, checked by params.py; src/fraud/data/history.py
    computes it). Empty for the Credit Card Fraud table: its features are given."""
    windows: tuple[int, ...] = ()    # days
    delay: int = 0                   # days until a label is known (the feedback delay)
    spending: tuple[str, ...] = ()   # entities profiled by count and mean amount
    risk: tuple[str, ...] = ()       # entities profiled by count and fraud rate, delayed
    time_flags: bool = False         # weekend and night (UTC)

    @property
    def active(self) -> bool:
        return bool(self.time_flags or (self.windows and (self.spending or self.risk)))

    def columns(self) -> tuple[str, ...]:
        """The columns it adds, in order: per spending entity and window the count and the
        mean amount, per risk entity and window the count and the fraud rate, the flags."""
        names = [name for entity in self.spending for days in self.windows
                 for name in (f"{stem(entity)}_tx_count_{days}d",
                              f"{stem(entity)}_mean_amount_{days}d")]
        names += [name for entity in self.risk for days in self.windows
                  for name in (f"{stem(entity)}_delayed_tx_count_{days}d",
                               f"{stem(entity)}_fraud_rate_{days}d")]
        return (*names, *(("is_weekend", "is_night") if self.time_flags else ()))


def stem(entity: str) -> str:
    """`terminal_id` -> `terminal`: the prefix of an entity's history features."""
    return entity[:-3] if entity.lower().endswith("_id") and len(entity) > 3 else entity


@dataclass(frozen=True)
class Layout:
    """A declaration resolved against a header: the concrete columns, in the pipeline's order."""
    label: str
    positive: float | str
    negative: float | str
    time: str | None
    time_format: str
    ids: tuple[str, ...]
    entities: tuple[str, ...]
    numeric: tuple[str, ...]
    amount: str | None
    drop: tuple[str, ...]
    history: tuple[str, ...] = ()  # what the features stage adds (HistorySpec.columns)
    categorical: tuple[str, ...] = ()

    @property
    def log_feature(self) -> str | None:
        """The model feature made from the amount: log(amount + clean.eps)."""
        return None if self.amount is None else LOG_PREFIX + self.amount

    @property
    def inputs(self) -> list[str]:
        """The detector's raw input columns, in order: the numeric block, the history
        features, then the amount."""
        return [*self.numeric, *self.history, *([self.amount] if self.amount else [])]

    @property
    def features(self) -> list[str]:
        """The model's numeric features, in order: the numeric block, the history features,
        then the logged amount (the one-hot features of the categorical columns follow them,
        named after the levels the scale stage learns: contract.ScalerStats.features)."""
        return [*self.numeric, *self.history,
                *([self.log_feature] if self.log_feature else [])]

    @property
    def model_inputs(self) -> list[str]:
        """Every raw column a model reads: the numeric `inputs` (the detector's float64
        tensor), then the categorical columns (its text tensor)."""
        return [*self.inputs, *self.categorical]

    @property
    def keys(self) -> list[str]:
        """Columns carried through the tables (and to scores) but never read by a model."""
        return [*self.ids, *(e for e in self.entities if e not in self.ids)]

    @property
    def raw_columns(self) -> list[str]:
        """The raw table's columns the pipeline reads, in the cleaned table's order."""
        return [*([self.time] if self.time else []), *self.keys, *self.given_inputs,
                *self.categorical, self.label]

    @property
    def given_inputs(self) -> list[str]:
        """The numeric inputs a raw row holds: `inputs` but the history features."""
        return [c for c in self.inputs if c not in self.history]

    @property
    def table_columns(self) -> list[str]:
        """The cleaned and split tables: time and keys (for the time split and audits), the
        inputs (the amount for amount-based costs), the log feature, the label."""
        return [*([self.time] if self.time else []), *self.keys, *self.model_inputs,
                *([self.log_feature] if self.log_feature else []), self.label]

    @property
    def compared_columns(self) -> list[str]:
        """What makes two rows duplicates in data.json's count: every column but the ids."""
        return [*([self.time] if self.time else []), *self.entities, *self.given_inputs,
                *self.categorical,
                self.label]

    def label_rule(self) -> str:
        return (f"{self.label} must be {_shown(self.negative)} (normal) or "
                f"{_shown(self.positive)} (fraud)")


@dataclass(frozen=True)
class DataDeclaration:
    """params.yaml's `data:` section, checked; `numeric` None means `auto` (every column the
    declaration does not name otherwise)."""
    label: str
    positive: float | str
    negative: float | str
    time: str | None
    time_format: str
    ids: tuple[str, ...]
    entities: tuple[str, ...]
    amount: str | None
    numeric: tuple[str, ...] | None
    categorical: tuple[str, ...]
    drop: tuple[str, ...]
    max_levels: int = MAX_LEVELS
    history: HistorySpec = HistorySpec()  # what the features stage adds (features:)

    def without_history(self) -> DataDeclaration:
        """The declaration of the tables before the features stage (raw and cleaned)."""
        return replace(self, history=HistorySpec())

    def named(self) -> list[str]:
        """Every column the declaration names, but the numeric ones."""
        return [*([self.time] if self.time else []), *self.ids,
                *(e for e in self.entities if e not in self.ids),
                *([self.amount] if self.amount else []), *self.categorical, self.label]

    def describes(self, layout: Layout) -> bool:
        """Whether this declaration, resolved on `layout`'s raw header, gives its columns."""
        try:
            found = self.resolve("data:", layout.raw_columns)
        except PipelineError:
            return False
        return (found.raw_columns, found.given_inputs, found.categorical, found.positive,
                found.negative) == (layout.raw_columns, layout.given_inputs,
                                    layout.categorical, layout.positive, layout.negative)

    def with_history(self, spec: HistorySpec) -> DataDeclaration:
        """This declaration with the features stage's columns as inputs; one may not take
        the name of a declared column."""
        columns = spec.columns()
        log = LOG_PREFIX + self.amount if self.amount else None
        taken = {*self.named(), *(self.numeric or ()), *self.categorical,
                 *([log] if log else [])}
        clash = [c for c in columns if c in taken]
        if clash:
            raise PipelineError(f"params.yaml: the features stage would add the column "
                                f"{printable(clash[0])}, a column of the data: section; "
                                "rename that column (or drop it), or change features:")
        return replace(self, history=spec)

    def layout(self, numeric: Sequence[str]) -> Layout:
        return Layout(label=self.label, positive=self.positive, negative=self.negative,
                      time=self.time, time_format=self.time_format, ids=self.ids,
                      entities=self.entities, numeric=tuple(numeric), amount=self.amount,
                      drop=self.drop, history=self.history.columns(),
                      categorical=self.categorical)

    def resolve(self, label: str | Path, header: Sequence[str], derived: bool = False,
                ) -> Layout:
        """The layout of a table with `header`, or one line naming what does not match.

        `derived`: the header of a table an earlier stage wrote (the log feature is in it,
        dropped columns are not)."""
        names = list(header)
        log = LOG_PREFIX + self.amount if self.amount else None
        if self.numeric is not None:
            numeric = list(self.numeric)
        else:
            ignored = {*self.named(), *self.drop, *([log] if derived and log else []),
                       *(self.history.columns() if derived else ())}
            numeric = [c for c in names if c not in ignored]
        layout = self.layout(numeric)
        taken = [c for c in self.history.columns() if c in names and c not in self.drop] \
            if not derived else []
        if taken:
            raise PipelineError(f"{label}: column {printable(taken[0])} has the name of a "
                                "history feature the features stage adds; rename it, or "
                                "list it in data.drop")
        required = layout.table_columns if derived else layout.raw_columns
        optional = () if derived else tuple(c for c in self.drop if c not in required)
        check_header(Path(label), names, required, optional,
                     extra_hint="" if derived else "declare each column in params.yaml's "
                     "data: section (data.numeric or data.categorical, or data.drop to ignore "
                     "it; docs/your-data.md)")
        if not layout.inputs:
            raise PipelineError(f"{label}: no numeric input column: data.numeric is empty and "
                                "there is no data.amount; declare the model's inputs in "
                                "params.yaml (categorical columns go beside at least one)")
        if len(layout.model_inputs) > MAX_INPUTS:
            raise PipelineError(f"{label}: {len(layout.model_inputs):,} input columns; at most "
                                f"{MAX_INPUTS:,} (list fewer in data.numeric, or the rest in "
                                "data.drop)")
        return layout


def check_header(path: Path, columns: list[str], required: list[str],
                 optional: tuple[str, ...] = (), extra_hint: str = "") -> None:
    """Names missing, extra, renamed and duplicated columns, with what was expected.

    `extra_hint` is added when the header has unexpected columns (predict's --id-column).
    """
    seen: set[str] = set()
    duplicated = list(dict.fromkeys(
        c for c in columns if c in seen or seen.add(c)))  # type: ignore[func-returns-value]
    if duplicated:
        raise PipelineError(f"{path}: column(s) {printable_names(duplicated)} appear "
                            "more than once in the header")
    missing = [c for c in required if c not in columns]
    extra = [c for c in columns if c not in required and c not in optional]
    if not missing and not extra:
        return
    expected = f"expected the columns {shown_columns(required, 40)}"
    if optional:
        expected += f" (optionally {shown_columns(optional, 40)})"
    if len(missing) == 1 and len(extra) == 1:
        position = columns.index(extra[0]) + 1
        raise PipelineError(f"{path}: column {position} is named {printable(extra[0])}, "
                            f"expected {missing[0]!r} (renamed column?); {expected}"
                            + (f"; {extra_hint}" if extra_hint else ""))
    parts = []
    if missing:
        parts.append(f"missing column(s) {printable_names(missing)}")
    if extra:
        parts.append(f"unexpected column(s) {printable_names(extra)}")
    hint = f"; {extra_hint}" if extra and extra_hint else ""
    raise PipelineError(f"{path}: {'; '.join(parts)}; {expected}{hint}")



CREDIT_CARD = DataDeclaration(
    label="Class", positive=1, negative=0, time="Time", time_format="seconds", ids=(),
    entities=(), amount="Amount", numeric=tuple(f"V{i}" for i in range(1, 29)),
    categorical=(), drop=())
# The raw card transactions `download.url: transactions` generates (src/fraud/data/transactions.py).
TRANSACTIONS = DataDeclaration(
    label="tx_fraud", positive=1, negative=0, time="tx_datetime", time_format="iso8601",
    ids=("transaction_id",), entities=("customer_id", "terminal_id"), amount="tx_amount",
    numeric=(), categorical=(), drop=())
# ... with transactions.categorical: true, three categorical columns beside them.
TRANSACTIONS_CATEGORICAL = DataDeclaration(
    **{**TRANSACTIONS.__dict__, "categorical": ("merchant_category", "country", "channel")})
# The Credit Card Fraud table's layout: what the synthetic stand-in writes and tests use.
CREDIT_CARD_LAYOUT = CREDIT_CARD.layout(CREDIT_CARD.numeric or ())


def _numbered(name: str) -> tuple[str, int | None]:
    stem = name.rstrip("0123456789")
    return (stem, int(name[len(stem):])) if stem != name else (name, None)


def shown_columns(columns: Sequence[str], most: int = 8) -> str:
    """Columns for a description, numbered runs shortened: `V1..V28, Amount`, `f0..f39`."""
    parts, i = [], 0
    while i < len(columns):
        stem, number = _numbered(columns[i])
        j = i
        while number is not None and j + 1 < len(columns) \
                and _numbered(columns[j + 1]) == (stem, number + j + 1 - i):
            j += 1
        parts.append(f"{columns[i]}..{columns[j]}" if j - i >= 2
                     else ", ".join(columns[i:j + 1]))
        i = j + 1
    if len(parts) > most:
        return f"{len(columns)} columns ({', '.join(parts[:3])}, …)"
    return ", ".join(parts)


def _shown(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _fail(key: str, value: Any, allowed: str) -> PipelineError:
    return PipelineError(f"params.yaml: data.{key} = {printable(value)} is invalid: expected "
                         f"{allowed}")


def _column(key: str, value: Any, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value.strip() or value != value.strip() \
            or any(ord(c) < 32 for c in value):
        raise _fail(key, value, "a column name" + (" or null (none)" if optional else "")
                    + ", without surrounding spaces")
    return value


# `V1..V28`: a numbered run of columns, as shown_columns writes it.
_RUN = re.compile(r"^(?P<stem>\D*?)(?P<first>\d+)\.\.(?P=stem)(?P<last>\d+)$")
MAX_RUN = 10_000


def _expand(key: str, item: Any) -> list[Any]:
    """One list item: a name, or a run `f0..f39` (f0, f1, …, f39)."""
    match = _RUN.match(item) if isinstance(item, str) else None
    if not match:
        return [item]
    first, last = int(match["first"]), int(match["last"])
    if not first < last <= first + MAX_RUN:
        raise _fail(key, item, f"a run of 2 to {MAX_RUN:,} numbered columns, first..last "
                               "(e.g. V1..V28)")
    return [f"{match['stem']}{n}" for n in range(first, last + 1)]


def _columns(key: str, value: Any) -> tuple[str, ...]:
    """A YAML list of names and runs (`V1..V28`), or one comma-separated string
    (`-S data.drop=a,b`); empty: ()."""
    if value is None or value == "":
        return ()
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise _fail(key, value, "a list of column names")
    items = [name for i, item in enumerate(items) for name in _expand(f"{key}[{i}]", item)]
    names = tuple(_column(f"{key}[{i}]", item) or "" for i, item in enumerate(items))
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise _fail(key, value, f"distinct names ({printable_names(repeated)} repeated)")
    return names


def _label_value(key: str, value: Any) -> float | str:
    if isinstance(value, bool) or value is None or isinstance(value, list | dict):
        raise _fail(key, value, "a label value: a number or a word")
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an integer of 400 digits
            number = math.inf
        if not math.isfinite(number):
            raise _fail(key, value, "a finite number or a word")
        return int(number) if number == int(number) else number
    return _column(key, value) or ""


def _max_levels(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) \
            or not 2 <= value <= MAX_LEVELS_CEILING:
        raise _fail("max_levels", value, f"a whole number from 2 to {MAX_LEVELS_CEILING} (the "
                    "most levels a categorical column may have in the training split)")
    return value


def parse_data(section: Any) -> DataDeclaration:
    """The `data:` section, checked: types, then that no column has two roles."""
    if section is None:
        return CREDIT_CARD
    if not isinstance(section, dict):
        raise PipelineError("params.yaml: section 'data' is not a mapping")
    unknown = sorted(map(str, set(section) - set(KEYS)))
    if unknown:
        raise PipelineError(f"params.yaml: unknown key(s) "
                            f"{printable_names([f'data.{k}' for k in unknown])}; 'data' takes "
                            f"{', '.join(KEYS)}")
    if "label" not in section:
        raise PipelineError("params.yaml: missing key data.label (the column that says "
                            "fraud or not)")
    get = section.get
    numeric_value = get("numeric", AUTO)
    time_format = get("time_format", AUTO)
    if time_format not in TIME_FORMATS:
        raise _fail("time_format", time_format, "one of " + ", ".join(TIME_FORMATS))
    declaration = DataDeclaration(
        label=_column("label", section["label"]) or "",
        positive=_label_value("positive", get("positive", 1)),
        negative=_label_value("negative", get("negative", 0)),
        time=_column("time", get("time"), optional=True),
        time_format=time_format,
        ids=_columns("ids", get("ids")), entities=_columns("entities", get("entities")),
        amount=_column("amount", get("amount"), optional=True),
        numeric=None if numeric_value == AUTO else _columns("numeric", numeric_value),
        categorical=_columns("categorical", get("categorical")),
        drop=_columns("drop", get("drop")),
        max_levels=_max_levels(get("max_levels", MAX_LEVELS)))
    if str(declaration.positive) == str(declaration.negative):
        raise _fail("negative", section.get("negative", 0),
                    f"a value other than data.positive ({_shown(declaration.positive)})")
    _check_roles(declaration)
    return declaration


def _check_roles(d: DataDeclaration) -> None:
    """A column has one role; the amount's log feature must not clash with a column."""
    roles: dict[str, str] = {}
    entries = [("label", d.label), *(("time", c) for c in [d.time] if c),
               *(("ids", c) for c in d.ids),
               *(("entities", c) for c in d.entities if c not in d.ids),
               *(("amount", c) for c in [d.amount] if c),
               *(("numeric", c) for c in d.numeric or ()),
               *(("categorical", c) for c in d.categorical), *(("drop", c) for c in d.drop)]
    for role, column in entries:
        if column in roles:
            raise PipelineError(f"params.yaml: column {printable(column)} is both "
                                f"data.{roles[column]} and data.{role}; give each column one "
                                "role")
        roles[column] = role
    if d.amount and LOG_PREFIX + d.amount in roles:
        raise PipelineError(f"params.yaml: column {printable(LOG_PREFIX + d.amount)} clashes "
                            f"with the log feature the pipeline makes of data.amount "
                            f"({d.amount}); drop or rename it")


# --- categorical columns: their levels and encodings (one home for the scale stage, the
# detectors' numpy twin and the tests) ------------------------------------------------------
#
# A categorical cell is compared as text, exactly as written ("3" and "3.0" are two levels).
# The levels are those seen in the training split, sorted (code point order): deterministic.
# A missing cell counts as unseen, and an unseen category counts as none of the known ones:
# all zeros in the one-hot block, a missing value (NaN) for the trees' native splits.

MISSING_TEXT = ""  # what a missing cell is in the detector's text tensor (never a level)


def category_text(values: Any) -> Any:
    """A column's cells as the detector's text tensor holds them (object array of str): as
    written; missing (None, NaN) as MISSING_TEXT."""
    import pandas as pd

    series = pd.Series(values, dtype=object)
    text = series.where(series.notna(), MISSING_TEXT).map(str)
    return text.to_numpy(dtype=object)


def learn_levels(label: str, column: str, values: Any, max_levels: int) -> tuple[str, ...]:
    """The levels of a categorical column, from the training split's cells."""
    levels = sorted(set(category_text(values).tolist()) - {MISSING_TEXT})
    if not levels:
        raise PipelineError(f"{label}: categorical column {printable(column)} has no value in "
                            "the training split (every cell is empty); fill it, or list it in "
                            "data.drop")
    if len(levels) > max_levels:
        raise PipelineError(
            f"{label}: categorical column {printable(column)} has {len(levels):,} levels in "
            f"the training split, over data.max_levels ({max_levels}); raise data.max_levels "
            f"(at most {MAX_LEVELS_CEILING}), merge rare levels into one (e.g. 'other') in "
            "the file, or list the column in data.drop")
    return tuple(levels)


def level_codes(values: Any, levels: Sequence[str]) -> Any:
    """Each cell's position among `levels` (int64), -1 if missing or unseen."""
    import numpy as np
    import pandas as pd

    codes = pd.Categorical(category_text(values), categories=list(levels)).codes
    return np.asarray(codes, dtype=np.int64)


def one_hot(values: Any, levels: Sequence[str]) -> Any:
    """(rows, levels) float32 of 0/1; a missing or unseen cell is a row of zeros."""
    import numpy as np

    codes = level_codes(values, levels)
    encoded = np.zeros((len(codes), len(levels)), dtype=np.float32)
    seen = codes >= 0
    encoded[np.flatnonzero(seen), codes[seen]] = 1.0
    return encoded


def one_hot_names(column: str, levels: Sequence[str]) -> list[str]:
    """The one-hot features' names: `column=level`."""
    return [f"{column}={level}" for level in levels]


def codes_of_one_hot(block: Any) -> Any:
    """A one-hot block (rows, levels) back to level codes (float64): the level's position,
    NaN for a row of zeros (missing or unseen), as the trees' native categorical splits read
    them."""
    import numpy as np

    block = np.asarray(block)
    codes = np.argmax(block, axis=1).astype(np.float64)
    codes[block.sum(axis=1) == 0] = np.nan
    return codes
