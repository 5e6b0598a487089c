"""A sweep's plan: which experiments it holds, what each is called, which machine runs which.

Functions of the command line and the commit: no DVC command, no subprocess (values are read
through DVC's own library code, overrides.py). The names matter most. A name is derived
from the code (commit, plus a hash of uncommitted changes) and the params of the
experiment, so the same sweep gives the same names on every machine and on
every rerun. Reuse and resuming rest on that: an experiment whose name exists with metrics
is not run again, and another clone finds it by name after `dvc exp pull`.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.params import parse_yaml
from ..errors import PipelineError, printable
from .overrides import Reading, read_as_dvc_writes, scratch

MAX_SEED = 2**32 - 1
# Each experiment is a whole pipeline run (~2 min of CPU on a 2-core machine) and a git ref:
# 1,000 is ~33 CPU-hours, past what a sweep on one team's machines finishes in a day. More
# seeds narrow an interval by sqrt(n) only: 1,000 seeds already make it ~14x narrower than 5.
MAX_SEEDS = 1000
MAX_EXPERIMENTS = 1000
# Prequential validation (--folds): the param each fold sets; the folds replace the seeds as
# the repetition axis. A fold moves validation back by split.val_days: 50 folds of a week are
# a year of data before the test window, past any table the simulator writes.
FOLD_KEY = "split.fold"
MAX_FOLDS = 50
# Git ref names (DVC experiment names are refs) allow more, but this keeps names portable.
PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,30}")


def seed_list(count: int | None, listed: str | None, first: int) -> list[int]:
    """The seeds to run: `count` consecutive seeds from `first` (the committed seed), or the
    comma-separated `listed` ones. At least 2, distinct: an interval needs two."""
    if (count is None) == (listed is None):
        raise PipelineError("give either --seeds N or --seed-list A,B,...")
    if listed is not None:
        if listed.count(",") >= MAX_SEEDS:
            raise PipelineError(f"--seed-list: {listed.count(',') + 1:,} seeds; at most "
                                f"{MAX_SEEDS:,} (each is a whole pipeline run)")
        seeds = []
        for item in listed.split(","):
            try:
                seeds.append(int(item.strip()))
            except ValueError:
                raise PipelineError(f"--seed-list: {printable(item.strip(), 40)} is not a whole "
                                    "number") from None
        if len(set(seeds)) != len(seeds):
            raise PipelineError(f"--seed-list: repeated seeds in {listed!r}")
    elif count is not None and count > MAX_SEEDS:
        raise PipelineError(f"--seeds {count:,}: at most {MAX_SEEDS:,} (each is a whole "
                            "pipeline run; 1,000 seeds already narrow an interval ~14x "
                            "against 5)")
    else:
        seeds = [first + i for i in range(count)]  # type: ignore[arg-type]
    if len(seeds) < 2:
        raise PipelineError("at least 2 seeds are needed for an interval (5 or more is better)")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise PipelineError(f"seeds must be whole numbers from 0 to 2**32 - 1, got "
                            f"{printable(bad, 60)}")
    return seeds


def fold_list(count: int) -> list[int]:
    """Folds 0..count-1 of a prequential sweep: at least 2 (a mean over one fold is the
    usual split), at most MAX_FOLDS."""
    if not 2 <= count <= MAX_FOLDS:
        raise PipelineError(f"--folds {count}: expected a whole number from 2 to {MAX_FOLDS} "
                            "(fold k validates k x split.val_days days before fold 0; 3 to 5 "
                            "is usual)")
    return list(range(count))


def check_fold_free(grid: Mapping[str, object], fixed: Mapping[str, object]) -> None:
    """With --folds the sweep sets split.fold itself."""
    for option, keys in (("--grid", grid), ("--set", fixed)):
        if FOLD_KEY in keys:
            raise PipelineError(f"{option} {FOLD_KEY}: --folds sets it (folds 0 to N-1); "
                                f"drop it from {option}")


def _key_value(option: str, value: str) -> tuple[str, str]:
    key, sep, text = value.partition("=")
    key, text = key.strip(), text.strip()
    if not sep or not key or not text:
        raise PipelineError(f"{option} {value!r}: expected KEY=VALUE, e.g. train.epochs=20")
    if key == "seed":
        raise PipelineError(f"{option} seed=...: the seed is what the sweep varies; use --seeds "
                            "or --seed-list")
    return key, text


def parse_set(values: Iterable[str]) -> dict[str, str]:
    """`--set train.epochs=20` values as {dotted key: value}: one value for every experiment."""
    result: dict[str, str] = {}
    for value in values:
        key, text = _key_value("--set", value)
        if key in result:
            raise PipelineError(f"--set {key}: given twice")
        result[key] = text
    return result


def parse_grid(values: Iterable[str]) -> dict[str, list[str]]:
    """`--grid model.hidden_units=16,32,64` values as {dotted key: [values]}, in the order
    given (the order of the experiments and of the report follows it)."""
    result: dict[str, list[str]] = {}
    for value in values:
        key, text = _key_value("--grid", value)
        items = [item.strip() for item in text.split(",")]
        if key in result:
            raise PipelineError(f"--grid {key}: given twice; list every value once: "
                                f"{key}=A,B,C")
        if not all(items) or len(set(items)) != len(items):
            raise PipelineError(f"--grid {value!r}: expected distinct, non-empty values "
                                "separated by commas")
        result[key] = items
    return result


def check_disjoint(grid: Mapping[str, object], fixed: Mapping[str, object]) -> None:
    both = sorted(set(grid) & set(fixed))
    if both:
        raise PipelineError(f"{', '.join(both)}: both in --grid and --set; keep one")


def parse_shard(text: str | None) -> tuple[int, int]:
    """`K/N` (1 <= K <= N): this machine runs share K of N. None: the whole sweep (1/1)."""
    if text is None:
        return 1, 1
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not 1 <= int(match.group(1)) <= int(match.group(2)):
        raise PipelineError(f"--shard {text!r}: expected K/N with 1 <= K <= N, e.g. 2/3")
    return int(match.group(1)), int(match.group(2))


@dataclass(frozen=True)
class Point:
    """One experiment of a sweep: a seed (or, prequential, a fold at one seed) and a value for
    each grid key."""
    seed: int
    settings: tuple[tuple[str, str], ...]  # (grid key, value), in the grid's key order
    name: str
    fold: int | None = None                # split.fold with --folds; None: a seed sweep

    @property
    def label(self) -> str:
        """The grid point without the seed, for report headings ("" without a grid)."""
        return ", ".join(f"{key}={value}" for key, value in self.settings)

    @property
    def repetition(self) -> int:
        """What the sweep repeats a grid point over: the fold, or else the seed."""
        return self.seed if self.fold is None else self.fold

    @property
    def repetition_label(self) -> str:
        return f"seed {self.seed}" if self.fold is None else f"fold {self.fold}"

    def overrides(self, fixed: Mapping[str, str]) -> dict[str, str]:
        """Everything `dvc exp run -S` sets for this experiment."""
        return _overrides(self.seed, self.fold, self.settings, fixed)


def _overrides(seed: int, fold: int | None, settings: Sequence[tuple[str, str]],
               fixed: Mapping[str, str]) -> dict[str, str]:
    """The params an experiment sets: what it runs with, and what its name hashes."""
    return {"seed": str(seed), **({} if fold is None else {FOLD_KEY: str(fold)}),
            **dict(settings), **fixed}


def code_key(commit: str, diff: bytes = b"") -> str:
    """What identifies the code: the commit, plus a hash of uncommitted tracked changes
    (which `dvc exp run --queue` puts into every experiment)."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        raise PipelineError(f"{commit!r} is not a git commit id")
    return commit[:8] + (f"-{hashlib.sha256(diff).hexdigest()[:6]}" if diff else "")


def check_prefix(prefix: str) -> None:
    if not PREFIX.fullmatch(prefix):
        raise PipelineError(f"--prefix {printable(prefix, 40)}: a letter, then up to 30 "
                            "letters, digits, - or _")


def experiment_name(prefix: str, code: str, seed: int, settings: Sequence[tuple[str, str]],
                    fixed: Mapping[str, str], fold: int | None = None) -> str:
    """`<prefix>-<code>-s<seed>-<hash of every param set>` (`-f<fold>-` in a prequential
    sweep): readable where it helps (the seed, the fold), exact where it must be (the hash
    covers seed, fold, grid values and --set values). A seed sweep's names are what they
    were before folds existed."""
    check_prefix(prefix)
    params = _overrides(seed, fold, settings, fixed)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return f"{prefix}-{code}-{'s' + str(seed) if fold is None else 'f' + str(fold)}-{digest}"


def expand(seeds: Sequence[int], grid: Mapping[str, Sequence[str]], fixed: Mapping[str, str],
           prefix: str, code: str, folds: Sequence[int] | None = None) -> list[Point]:
    """Every grid point with every seed, grid point by grid point, seeds in the order given;
    with `folds` (a prequential sweep, one seed), every grid point with every fold."""
    check_disjoint(grid, fixed)
    if folds is not None:
        check_fold_free(grid, fixed)
        if len(seeds) != 1:
            raise PipelineError("a prequential sweep runs its folds at one seed")
    keys = list(grid)
    points = []
    for values in itertools.product(*(grid[key] for key in keys)):
        settings = tuple(zip(keys, values, strict=True))
        for seed, fold in ([(seeds[0], f) for f in folds] if folds is not None
                           else [(s, None) for s in seeds]):
            points.append(Point(seed=seed, settings=settings, fold=fold,
                                name=experiment_name(prefix, code, seed, settings, fixed, fold)))
    return points


def check_size(repetitions: Sequence[int], grid: Mapping[str, Sequence[str]],
               axis: str = "seeds") -> None:
    """Refuses a sweep of more than MAX_EXPERIMENTS before any list of them is built;
    `repetitions` are its seeds (or its folds: `axis`)."""
    count = len(repetitions) * math.prod(len(values) for values in grid.values())
    if count > MAX_EXPERIMENTS:
        raise PipelineError(f"{count:,} experiments ({len(repetitions)} {axis} x "
                            f"{count // max(len(repetitions), 1):,} grid points); at most "
                            f"{MAX_EXPERIMENTS:,}, each a whole pipeline run")


# Hydra's override prefixes, which `dvc exp run -S` passes on: +key adds a key, ++key adds
# or sets, ~key deletes. A sweep varies the values of the keys params.yaml has, nothing else.
OVERRIDE_PREFIXES = ("+", "~")


def _check_key(raw: Mapping[str, Any], option: str, key: str) -> None:
    shown = printable(key, 80)
    if key.startswith(OVERRIDE_PREFIXES):
        raise PipelineError(f"{option} {shown}: a sweep sets keys params.yaml has; add or "
                            "remove a key in params.yaml itself, not with +key or ~key")
    if ":" in key:
        raise PipelineError(f"{option} {shown}: a sweep sets params.yaml's keys only")
    node: Any = raw
    parts = key.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, Mapping) or part not in node:
            where = ".".join(parts[:depth]) or "the top level"
            known = [str(k) for k in node] if isinstance(node, Mapping) else []
            close = difflib.get_close_matches(part, known, n=1)
            hint = ".".join([*parts[:depth], close[0], *parts[depth + 1:]]) if close else ""
            raise PipelineError(f"{option} {shown}: params.yaml has no such key (no "
                                f"{printable(part, 40)} in {where})"
                                + (f"; did you mean {printable(hint, 80)}?" if hint else ""))
        node = node[part]
    if isinstance(node, Mapping):
        raise PipelineError(f"{option} {shown}: a section of params.yaml; set its keys one by "
                            "one")


def _same(first: Any, second: Any) -> bool:
    """Equal and of one type: 1e-05 and '1e-05' are not the same reading (1 and True neither)."""
    return type(first) is type(second) and first == second


def _with(params: Any, key: str, value: Any) -> Any:
    changed = copy.deepcopy(params)
    *sections, last = key.split(".")
    node = changed
    for name in sections:
        node = node[name]
    node[last] = value
    return changed


def _typed(validate: Callable[[Any], object], params: Any) -> object:
    """The params as the pipeline types them, or None when it refuses them."""
    try:
        return validate(params)
    except PipelineError:
        return None


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _check_reading(key: str, reading: Reading, validate: Callable[[Any], object],
                   what: str) -> None:
    """DVC must record what the stages get: not `1:30` (text for DVC, 90 for the stages),
    not `yes` ('yes' / True), not `010` or '16' (text for DVC, a number for the pipeline)."""
    stage = _typed(validate, reading.stage_params)
    if not _same(reading.dvc, reading.stage):
        if stage is None or stage != _typed(validate, _with(reading.stage_params, key,
                                                            reading.dvc)):
            raise PipelineError(
                f"{what}: DVC records {printable(reading.dvc, 40)} (params.yaml read as YAML "
                f"1.2), but the stages read {printable(reading.stage, 40)} (YAML 1.1); write a "
                "value both read alike (a plain number, true or false, a word)")
        return
    number = _number(reading.dvc) if isinstance(reading.dvc, str) else None
    if number is not None and stage is not None and \
            stage == _typed(validate, _with(reading.stage_params, key, number)):
        raise PipelineError(f"{what}: DVC records the text {printable(reading.dvc, 40)} "
                            "(quoted, or a leading zero: YAML 1.2 has no such number), which "
                            f"the pipeline reads as the number {number:g}; write the number "
                            "plainly, e.g. 10 or 0.5")


def _stage_value(option: str, text: str, overrides: Mapping[str, str], path: Path,
                 validate: Callable[[Any], object], what: str) -> object:
    """The params the stages get with `overrides` (typed by `validate`), after checking that
    DVC records what they read."""
    readings = read_as_dvc_writes(text, overrides, path, option)
    for key, reading in readings.items():
        _check_reading(key, reading, validate, what)
    try:
        return validate(readings[next(iter(readings))].stage_params)
    except PipelineError as error:
        raise PipelineError(f"{what}: {error}") from None


def check_overrides(text: str, grid: Mapping[str, Sequence[str]], fixed: Mapping[str, str],
                    validate: Callable[[Any], object]) -> None:
    """Every key of --grid and --set is one params.yaml (`text`) has, and every value is
    read alike by DVC and by the stages, and passes `validate` (the pipeline's own check),
    before anything is queued: a bad key or value would otherwise fail in every queued
    experiment, be added by DVC as a new key, or train something else than DVC records.
    Grid values the stages read as one value (16, 16.0, 1.6e1) are refused."""
    raw = parse_yaml(text, "params.yaml")
    for option, keys in (("--set", fixed), ("--grid", grid)):
        for key in keys:
            _check_key(raw, option, key)
    with scratch(text) as path:
        if fixed:
            _stage_value("--set", text, fixed, path, validate, "--set " + ", ".join(
                f"{k}={printable(v, 40)[1:-1]}" for k, v in fixed.items()))
        for key, values in grid.items():
            seen: list[tuple[str, object]] = []
            for value in values:
                what = f"--grid {printable(key, 80)[1:-1]}={printable(value, 40)[1:-1]}"
                typed = _stage_value("--grid", text, {key: value, **fixed}, path, validate,
                                     what)
                same = [given for given, known in seen if known == typed]
                if same:
                    raise PipelineError(f"--grid {printable(key, 80)[1:-1]}: "
                                        f"{printable(same[0], 40)[1:-1]} and "
                                        f"{printable(value, 40)[1:-1]} are the same value for "
                                        "the pipeline (read and typed as params.yaml's); list "
                                        "each value once")
                seen.append((value, typed))


def shard(points: Sequence[Point], k: int, n: int) -> list[Point]:
    """Share `k` of `n`: every n-th experiment from the k-th. Shares are disjoint, cover the
    sweep, and differ in size by at most one; a share depends only on the plan, so every
    machine computes the same split without talking to the others."""
    if not 1 <= k <= n:
        raise PipelineError(f"shard {k}/{n}: expected 1 <= K <= N")
    return list(points[k - 1::n])


def groups(points: Sequence[Point]) -> dict[tuple[tuple[str, str], ...], list[Point]]:
    """The sweep's points by grid point (seeds, or folds, together), in plan order."""
    result: dict[tuple[tuple[str, str], ...], list[Point]] = {}
    for point in points:
        result.setdefault(point.settings, []).append(point)
    return result


def finished_groups(points: Sequence[Point], finished: Container[str], skipped: list[str],
                    unit: str, needs: str, partial: str) -> Iterator[list[Point]]:
    """Each grid point's finished points (names in `finished`), for the grid points with at
    least 2 of them; the others, and those with only some, get a note in `skipped`, in plan
    order. `unit` names the repetitions ("seeds", "folds"), `needs` why 2 ("an interval
    needs 2"), `partial` what is done with fewer than all ("compared over")."""
    for group in groups(points).values():
        done = [point for point in group if point.name in finished]
        label = group[0].label or "the sweep"
        if len(done) < 2:
            skipped.append(f"{label}: {len(done)} of {len(group)} {unit} finished; {needs}")
            continue
        if len(done) < len(group):
            skipped.append(f"{label}: {partial} {len(done)} of {len(group)} {unit}")
        yield done
