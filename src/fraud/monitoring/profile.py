"""The reference a batch is compared with: quantile bins of the training data and its scores.

Per raw model input (the detector's input columns) and for the model's score (the
calibrated probability), BINS equal-mass bins cut at the training split's deciles:

- the cuts are the deciles' `higher` observations rounded to CUT_DIGITS significant
  digits; a value equal to a cut belongs to the bin above it, [cut_i, cut_i+1);
- ties: cuts that coincide are merged, and a cut that leaves a bin without training rows
  (one at the minimum) is dropped, so a column with a heavy point mass (Amount: many 1.00
  and 0.00 rows) gets fewer, unequal bins, every one of them non-empty;
- the outer bins are open: (−inf, first cut) and [last cut, +inf), so values outside the
  training range land in them.

The reference stores the cuts and the training rows per bin (counts, exact integers), so the
shares it compares with are the ones the cuts really make, ties included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.declaration import CREDIT_CARD_LAYOUT, MAX_LEVELS_CEILING, level_codes, shown_columns
from ..core.files import read_json_file
from ..errors import PipelineError, printable, printable_names

BINS = 10
FORMAT = "fraud-monitor-reference"
VERSION = 1
SCORE = "score"
# Cuts are rounded to this many significant digits before the training rows are counted:
# the file stays small and readable, and the counts are exact for the cuts it stores.
CUT_DIGITS = 6
# A reference is ~7 KB; a large file is not one (and is not read whole).
MAX_REFERENCE_BYTES = 1 << 20
# What a reference may say of itself: bins per column (BINS is asked for; a hand-made
# reference of 10^30 would make the noise floor huge) and training rows (counts are int64).
MAX_BINS = 100
MAX_ROWS = 10**12
# A model's reference as the reference stage writes it names the files its scores came
# from (name -> sha256) under this key; export checks them against the files it ships.
BUILT_FROM = "built_from"
# Where the export stage stores the reference in the model card: one file travels with the
# model, so a team cannot pair a model with another model's reference by mistake.
CARD_KEY = "monitoring_reference"


@dataclass(frozen=True)
class Profile:
    """One column's bins: `cuts` (strictly increasing) and training rows per bin."""
    cuts: np.ndarray    # float64, len(counts) - 1
    counts: np.ndarray  # int64, every one > 0 when built from data

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """Rows of `values` per bin (same bins as `counts`)."""
        index = np.searchsorted(self.cuts, np.asarray(values, dtype=np.float64), side="right")
        return np.bincount(index, minlength=len(self.counts)).astype(np.int64)


def build_profile(values: np.ndarray, bins: int = BINS) -> Profile:
    """Equal-mass bins at the quantiles of `values` (see the module docstring for ties)."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if not len(values) or not np.isfinite(values).all():
        raise ValueError("a profile needs at least one value, all finite")
    levels = np.arange(1, bins) / bins
    cuts = np.quantile(values, levels, method="higher")
    cuts = np.unique([float(f"{cut:.{CUT_DIGITS}g}") for cut in cuts])
    profile = Profile(cuts=cuts, counts=np.zeros(len(cuts) + 1, dtype=np.int64))
    counts = profile.bin_counts(values)
    while (counts == 0).any():  # a rounded cut can leave a bin empty: merge it upwards
        empty = int(np.flatnonzero(counts == 0)[0])
        cuts = np.delete(cuts, min(empty, len(cuts) - 1))
        profile = Profile(cuts=cuts, counts=np.zeros(len(cuts) + 1, dtype=np.int64))
        counts = profile.bin_counts(values)
    distinct = np.unique(values)
    if not len(cuts) and len(distinct) > 1:
        # Most rows share one value (a fraud rate that is mostly 0): every decile falls on it.
        # Two bins, that value and below / above it, still show its tail drifting.
        above = distinct[distinct > np.median(values)]
        cuts = above[:1] if len(above) else distinct[-1:]
        profile = Profile(cuts=cuts, counts=np.zeros(len(cuts) + 1, dtype=np.int64))
        counts = profile.bin_counts(values)
    return Profile(cuts=cuts, counts=counts)


@dataclass(frozen=True)
class LevelProfile:
    """A categorical column's bins: one per level learnt on the training split, in order,
    then one for everything else (unseen or missing text: none of the known levels, as the
    detector encodes it). `psi` reads its counts as any profile's."""
    levels: tuple[str, ...]
    counts: np.ndarray  # int64, len(levels) + 1; the last bin (unseen) is 0 on training data

    def bin_counts(self, values: np.ndarray) -> np.ndarray:
        """Rows of `values` per level, then unseen or missing ones."""
        codes = level_codes(values, self.levels)
        codes[codes < 0] = len(self.levels)
        return np.bincount(codes, minlength=len(self.levels) + 1).astype(np.int64)


def build_level_profile(values: np.ndarray, levels: Sequence[str]) -> LevelProfile:
    """The training split's rows per level (the scale stage's levels, scaler.json)."""
    profile = LevelProfile(levels=tuple(levels), counts=np.zeros(len(levels) + 1, np.int64))
    return LevelProfile(levels=profile.levels, counts=profile.bin_counts(values))


@dataclass(frozen=True)
class Reference:
    """The training data's profiles: one per input column, and the score's."""
    columns: dict[str, Profile | LevelProfile]  # the model's input columns, in order
    score: Profile
    rows: int
    bins: int = BINS                 # asked for; a column with ties has fewer
    model_sha256: str | None = None  # the model whose scores made `score`, when known


def column_profiles(features: np.ndarray, bins: int = BINS,
                    names: Sequence[str] = CREDIT_CARD_LAYOUT.inputs,
                    levels: dict[str, tuple[str, ...]] | None = None
                    ) -> dict[str, Profile | LevelProfile]:
    """The profiles of raw inputs `features` (rows, one per name): they do not depend on
    the model, so one set serves the references of several models. A column in `levels`
    (categorical: its training levels) is profiled over them, plus an unseen bin."""
    levels = levels or {}
    features = np.asarray(features, dtype=object if levels else np.float64)
    if features.ndim != 2 or features.shape[1] != len(names):
        raise ValueError(f"expected (rows, {len(names)}) features, got {features.shape}")
    return {name: build_level_profile(features[:, i], levels[name]) if name in levels
            else build_profile(np.asarray(features[:, i], dtype=np.float64), bins)
            for i, name in enumerate(names)}


def build_reference(features: np.ndarray, scores: np.ndarray,
                    model_sha256: str | None = None, bins: int = BINS,
                    columns: dict[str, Profile] | None = None,
                    names: Sequence[str] = CREDIT_CARD_LAYOUT.inputs) -> Reference:
    """The reference of raw inputs `features` (rows, one per name) and their `scores`;
    `columns`: column_profiles(features, names) when already built."""
    if columns is None or all(isinstance(p, Profile) for p in columns.values()):
        features = np.asarray(features, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if features.ndim != 2 or features.shape[1] != len(names) \
            or len(scores) != len(features):
        raise ValueError(f"expected (rows, {len(names)}) features and one score per "
                         f"row, got {features.shape} and {scores.shape}")
    return Reference(columns=columns if columns is not None
                     else column_profiles(features, bins, names),
                     score=build_profile(scores, bins), rows=len(features), bins=bins,
                     model_sha256=model_sha256)


def _profile_json(profile: Profile | LevelProfile) -> dict[str, Any]:
    if isinstance(profile, LevelProfile):
        return {"levels": list(profile.levels), "counts": [int(v) for v in profile.counts]}
    return {"cuts": [float(v) for v in profile.cuts],
            "counts": [int(v) for v in profile.counts]}


def reference_to_json(reference: Reference) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "bins": reference.bins, "rows": reference.rows,
        "columns": {name: _profile_json(p) for name, p in reference.columns.items()},
        SCORE: _profile_json(reference.score)}
    if reference.model_sha256 is not None:
        data["model_sha256"] = reference.model_sha256
    return data


def _bad(label: str, problem: str) -> PipelineError:
    return PipelineError(f"{label}: {problem}; build the reference again from the model's "
                         "training data")


def _finite(value: Any) -> bool:
    """A JSON number that is a finite float64 (an integer of 400 digits is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _parse_levels(data: dict[str, Any], rows: int, label: str, name: str) -> LevelProfile:
    """A categorical column's bins: its training levels (distinct, non-empty text), then
    the unseen bin; training rows in every level's bin."""
    levels, counts = data["levels"], data.get("counts")
    if not isinstance(levels, list) or not levels or len(levels) > MAX_LEVELS_CEILING \
            or not all(isinstance(v, str) and v for v in levels) \
            or len(set(levels)) != len(levels) or not isinstance(counts, list) \
            or len(counts) != len(levels) + 1 \
            or not all(type(v) is int and v >= 0 for v in counts):
        raise _bad(label, f"{name}: expected 1 to {MAX_LEVELS_CEILING} distinct levels and "
                          "one whole count >= 0 more (the unseen bin)")
    if sum(counts) != rows or 0 in counts[:-1]:
        raise _bad(label, f"{name}: its counts must add up to the reference's {rows:,} rows, "
                          "with training rows at every level")
    return LevelProfile(levels=tuple(levels), counts=np.asarray(counts, dtype=np.int64))


def _parse_profile(data: Any, rows: int, bins: int, label: str, name: str
                   ) -> Profile | LevelProfile:
    """One column's bins, as build_profile makes them: at least one cut for the score (one
    bin shows no drift, ever; only an input constant in training has one), at most `bins`
    bins, and training rows in every bin (an empty one would make every batch row there
    weigh 1/EMPTY_BIN_SHARE times its share: PSI 8-16). A categorical column's has levels
    instead of cuts (`_parse_levels`)."""
    if isinstance(data, dict) and "levels" in data and name != SCORE:
        return _parse_levels(data, rows, label, name)
    if not isinstance(data, dict) or not isinstance(data.get("cuts"), list) \
            or not isinstance(data.get("counts"), list):
        raise _bad(label, f"{name}: expected an object with lists 'cuts' and 'counts'")
    cuts, counts = data["cuts"], data["counts"]
    if not all(_finite(v) for v in cuts) or not all(type(v) is int and v >= 0 for v in counts):
        raise _bad(label, f"{name}: cuts must be finite numbers and counts whole numbers >= 0")
    fewest = 1 if name == SCORE else 0  # a column constant in training has one bin
    if len(counts) != len(cuts) + 1 or not fewest + 1 <= len(counts) <= bins:
        raise _bad(label, f"{name}: expected {fewest} to {bins - 1} cuts (its 'bins' is "
                          f"{bins}) and "
                          f"one count more, got {len(cuts)} cuts and {len(counts)} counts")
    cut_array = np.asarray(cuts, dtype=np.float64)
    if (np.diff(cut_array) <= 0).any():
        raise _bad(label, f"{name}: its cuts are not strictly increasing")
    if sum(counts) != rows:
        raise _bad(label, f"{name}: its counts add up to {sum(counts):,}, not the "
                          f"reference's {rows:,} rows")
    if 0 in counts:
        raise _bad(label, f"{name}: bin {counts.index(0) + 1} has no training rows (a "
                          "reference's bins are never empty)")
    if name == SCORE and not 0 < cut_array[0] <= cut_array[-1] <= 1:
        raise _bad(label, f"{name}: cuts outside (0, 1]; the score is a probability")
    return Profile(cuts=cut_array, counts=np.asarray(counts, dtype=np.int64))


def reference_from_json(data: Any, label: str,
                        inputs: Sequence[str] = CREDIT_CARD_LAYOUT.inputs) -> Reference:
    """A Reference from its JSON, for a model of `inputs` (its columns, in order); anything
    else is a one-line PipelineError naming `label`.
    Strict: a reference that would hide drift (no cuts), inflate it (empty training bins)
    or overflow (10^40 rows) is refused, not reported on."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise PipelineError(f"{label}: not a monitoring reference (no \"format\": "
                            f"\"{FORMAT}\")")
    if data.get("version") != VERSION:
        raise _bad(label, f"version {printable(data.get('version'))}, this code reads "
                          f"version {VERSION}")
    rows, bins, sha = data.get("rows"), data.get("bins"), data.get("model_sha256")
    if type(rows) is not int or not 1 <= rows <= MAX_ROWS or type(bins) is not int \
            or not 2 <= bins <= MAX_BINS or not isinstance(sha, (str, type(None))):
        raise _bad(label, f"'rows' must be a whole number from 1 to {MAX_ROWS:,}, 'bins' "
                          f"from 2 to {MAX_BINS} and 'model_sha256' text; got "
                          f"{printable(rows, 30)}, {printable(bins, 30)}")
    columns = data.get("columns")
    names = list(columns) if isinstance(columns, dict) else []
    if sorted(names) != sorted(inputs):
        missing = [c for c in inputs if c not in names]
        extra = [c for c in names if c not in inputs]
        what = (f"missing {printable_names(missing)}" if missing else
                f"unexpected {printable_names(extra)}" if extra else "repeated")
        raise PipelineError(f"{label}: does not match this model's inputs: its columns are "
                            f"{what}; expected {shown_columns(inputs, 40)}")
    return Reference(
        columns={name: _parse_profile(columns[name], rows, bins, label, name)
                 for name in inputs},
        score=_parse_profile(data.get(SCORE), rows, bins, label, SCORE),  # type: ignore[arg-type]
        rows=rows, bins=bins,
        model_sha256=sha)


def read_reference(path: Path, inputs: Sequence[str] = CREDIT_CARD_LAYOUT.inputs) -> Reference:
    """The reference at `path`; a missing, oversized or malformed file is one line."""
    if not path.is_file():
        raise PipelineError(f"{path}: monitoring reference not found; pass --reference "
                            "REF.json (built from the model's training data)")
    if path.stat().st_size > MAX_REFERENCE_BYTES:
        raise PipelineError(f"{path}: over {MAX_REFERENCE_BYTES:,} bytes; not a monitoring "
                            "reference")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise PipelineError(f"{path}: not valid JSON "
                            f"({printable(str(error) or type(error).__name__, 200)})") from None
    return reference_from_json(data, str(path), inputs)


def reference_from_card(card: dict[str, Any], label: str,
                        inputs: Sequence[str] = CREDIT_CARD_LAYOUT.inputs) -> Reference:
    """The reference the export stage stored in the model card (`CARD_KEY`)."""
    if CARD_KEY not in card:
        raise PipelineError(f"{label}: the model card has no {CARD_KEY!r}; export the model "
                            "again (dvc repro export), or pass --reference REF.json")
    return reference_from_json(card[CARD_KEY], f"{label} ({CARD_KEY})", inputs)


def check_reference_model(reference: Reference, model_sha256: str, model: str,
                          label: str) -> None:
    """A reference that names its model must be this model's: its score bins are that
    model's scores, so another model's would report drift that is not there."""
    if reference.model_sha256 is not None and reference.model_sha256 != model_sha256:
        raise PipelineError(f"{label}: built for another model (its model_sha256 differs "
                            f"from {model}'s); pass the card or reference exported with it")


def model_reference_json(reference: Reference, built_from: dict[str, str]) -> dict[str, Any]:
    """The reference stage's file: the reference and the sha256 of the files it scored."""
    return {**reference_to_json(reference), BUILT_FROM: dict(sorted(built_from.items()))}


def read_model_reference(path: Path, built_from: dict[str, str], stage: str,
                         inputs: Sequence[str] = CREDIT_CARD_LAYOUT.inputs) -> Reference:
    """The reference stage's file for a model, if it was built from exactly `built_from`
    (name -> sha256): else its score bins belong to other weights or calibration."""
    data = read_json_file(path, stage)
    found = data.get(BUILT_FROM) if isinstance(data, dict) else None
    if not isinstance(found, dict) or found != dict(sorted(built_from.items())):
        names = [name for name in built_from
                 if not isinstance(found, dict) or found.get(name) != built_from[name]]
        raise PipelineError(f"{path}: built from another {' and '.join(names) or 'model'} "
                            f"than the one shipped; run the {stage} stage again")
    return reference_from_json({k: v for k, v in data.items() if k != BUILT_FROM}, str(path),
                               inputs)
