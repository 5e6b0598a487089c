"""A sweep's plan: which experiments it holds, what each is called, which machine runs which.

Pure functions of the command line and the commit: no DVC, no subprocesses. The names matter
most. A name is derived from the code (commit, plus a hash of uncommitted changes) and the
params of the experiment, so the same sweep gives the same names on every machine and on
every rerun. Reuse and resuming rest on that: an experiment whose name exists with metrics
is not run again, and another clone finds it by name after `dvc exp pull`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ..errors import PipelineError

MAX_SEED = 2**32 - 1
# Git ref names (DVC experiment names are refs) allow more, but this keeps names portable.
PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,30}")


def seed_list(count: int | None, listed: str | None, first: int) -> list[int]:
    """The seeds to run: `count` consecutive seeds from `first` (the committed seed), or the
    comma-separated `listed` ones. At least 2, distinct: an interval needs two."""
    if (count is None) == (listed is None):
        raise PipelineError("give either --seeds N or --seed-list A,B,...")
    if listed is not None:
        seeds = []
        for item in listed.split(","):
            try:
                seeds.append(int(item.strip()))
            except ValueError:
                raise PipelineError(f"--seed-list: {item.strip()!r} is not a whole number") \
                    from None
        if len(set(seeds)) != len(seeds):
            raise PipelineError(f"--seed-list: repeated seeds in {listed!r}")
    else:
        seeds = [first + i for i in range(count)]  # type: ignore[arg-type]
    if len(seeds) < 2:
        raise PipelineError("at least 2 seeds are needed for an interval (5 or more is better)")
    bad = [s for s in seeds if not 0 <= s <= MAX_SEED]
    if bad:
        raise PipelineError(f"seeds must be whole numbers from 0 to 2**32 - 1, got {bad}")
    return seeds


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
    """One experiment of a sweep: a seed and a value for each grid key."""
    seed: int
    settings: tuple[tuple[str, str], ...]  # (grid key, value), in the grid's key order
    name: str

    @property
    def label(self) -> str:
        """The grid point without the seed, for report headings ("" without a grid)."""
        return ", ".join(f"{key}={value}" for key, value in self.settings)

    def overrides(self, fixed: Mapping[str, str]) -> dict[str, str]:
        """Everything `dvc exp run -S` sets for this experiment."""
        return {"seed": str(self.seed), **dict(self.settings), **fixed}


def code_key(commit: str, diff: bytes = b"") -> str:
    """What identifies the code: the commit, plus a hash of uncommitted tracked changes
    (which `dvc exp run --queue` puts into every experiment)."""
    if not re.fullmatch(r"[0-9a-f]{7,40}", commit):
        raise PipelineError(f"{commit!r} is not a git commit id")
    return commit[:8] + (f"-{hashlib.sha256(diff).hexdigest()[:6]}" if diff else "")


def experiment_name(prefix: str, code: str, seed: int, settings: Sequence[tuple[str, str]],
                    fixed: Mapping[str, str]) -> str:
    """`<prefix>-<code>-s<seed>-<hash of every param set>`: readable where it helps (the
    seed), exact where it must be (the hash covers seed, grid values and --set values)."""
    if not PREFIX.fullmatch(prefix):
        raise PipelineError(f"--prefix {prefix!r}: a letter, then up to 30 letters, digits, "
                            "- or _")
    params = {"seed": str(seed), **dict(settings), **fixed}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
    return f"{prefix}-{code}-s{seed}-{digest}"


def expand(seeds: Sequence[int], grid: Mapping[str, Sequence[str]], fixed: Mapping[str, str],
           prefix: str, code: str) -> list[Point]:
    """Every grid point with every seed, grid point by grid point, seeds in the order given."""
    check_disjoint(grid, fixed)
    keys = list(grid)
    points = []
    for values in itertools.product(*(grid[key] for key in keys)):
        settings = tuple(zip(keys, values, strict=True))
        for seed in seeds:
            points.append(Point(seed=seed, settings=settings,
                                name=experiment_name(prefix, code, seed, settings, fixed)))
    return points


def shard(points: Sequence[Point], k: int, n: int) -> list[Point]:
    """Share `k` of `n`: every n-th experiment from the k-th. Shares are disjoint, cover the
    sweep, and differ in size by at most one; a share depends only on the plan, so every
    machine computes the same split without talking to the others."""
    if not 1 <= k <= n:
        raise PipelineError(f"shard {k}/{n}: expected 1 <= K <= N")
    return list(points[k - 1::n])


def groups(points: Sequence[Point]) -> dict[tuple[tuple[str, str], ...], list[Point]]:
    """The sweep's points by grid point (seeds together), in plan order."""
    result: dict[tuple[tuple[str, str], ...], list[Point]] = {}
    for point in points:
        result.setdefault(point.settings, []).append(point)
    return result
