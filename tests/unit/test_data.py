"""Data stages' logic (read, clean, summarise, split, scale) and the clean stage on bad CSVs."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraud.core.params import SplitParams
from fraud.data.prepare import (
    clean,
    features_and_labels,
    fit_scaler,
    read_raw_csv,
    scale,
    scaler_to_json,
    split,
    summarise,
)
from fraud.data.synthetic import generate_creditcard, write_creditcard_csv
from fraud.errors import PipelineError
from tests.conftest import join, set_cell
from tests.credit_card import (
    FEATURES,
    INPUT_COLUMNS,
    LABEL,
    LOG_AMOUNT,
    N_FEATURES,
    RAW_COLUMNS,
    TABLE_COLUMNS,
    V_COLUMNS,
)

ROWS, RATE, SEED = 3000, 0.02, 11


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return generate_creditcard(ROWS, RATE, SEED)


@pytest.fixture(scope="module")
def csv_path(frame: pd.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("raw") / "creditcard.csv"
    write_creditcard_csv(frame, path)
    return path


@pytest.fixture(scope="module")
def raw(csv_path: Path) -> pd.DataFrame:
    return read_raw_csv(csv_path)


@pytest.fixture(scope="module")
def cleaned(raw: pd.DataFrame) -> pd.DataFrame:
    return clean(raw, 0.001)


# --- read_raw_csv -------------------------------------------------------------------------------

def test_read_raw_csv_round_trip(frame: pd.DataFrame, raw: pd.DataFrame) -> None:
    assert list(raw.columns) == RAW_COLUMNS
    assert len(raw) == ROWS
    assert all(raw[c].dtype == np.float64 for c in RAW_COLUMNS if c != LABEL)
    assert raw[LABEL].dtype == np.int8
    pd.testing.assert_frame_equal(raw, frame, check_dtype=False)
    assert int(raw[LABEL].sum()) == round(ROWS * RATE)


def test_read_raw_csv_accepts_crlf_and_bom(frame: pd.DataFrame, csv_path: Path,
                                           tmp_path: Path) -> None:
    text = csv_path.read_text(encoding="ascii")
    crlf = tmp_path / "crlf.csv"
    crlf.write_bytes(text.replace("\n", "\r\n").encode())
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode())  # Excel's "CSV UTF-8"
    for path in (crlf, bom):
        pd.testing.assert_frame_equal(read_raw_csv(path), frame, check_dtype=False)


def test_read_raw_csv_unquoted_header(frame: pd.DataFrame, csv_path: Path, tmp_path: Path) -> None:
    lines = csv_path.read_text(encoding="ascii").split("\n")
    lines[0] = lines[0].replace('"', "")
    path = tmp_path / "plain.csv"
    path.write_text("\n".join(lines), encoding="ascii")
    pd.testing.assert_frame_equal(read_raw_csv(path), frame, check_dtype=False)


# --- clean, summarise ---------------------------------------------------------------------------

@pytest.mark.parametrize("eps", [0.001, 1e-8, 1.0])
def test_clean_logs_amount_and_keeps_time_and_amount(raw: pd.DataFrame, eps: float) -> None:
    out = clean(raw, eps)
    assert list(out.columns) == TABLE_COLUMNS
    np.testing.assert_array_equal(out["Time"].to_numpy(), raw["Time"].to_numpy())
    np.testing.assert_array_equal(out["Amount"].to_numpy(), raw["Amount"].to_numpy())
    assert len(out) == len(raw)
    np.testing.assert_array_equal(out[LOG_AMOUNT].to_numpy(),
                                  np.log(raw["Amount"].to_numpy() + eps))
    np.testing.assert_array_equal(out[V_COLUMNS].to_numpy(), raw[V_COLUMNS].to_numpy())
    np.testing.assert_array_equal(out[LABEL].to_numpy(), raw[LABEL].to_numpy())
    zero = raw["Amount"].to_numpy() == 0
    assert zero.any()  # the synthetic data has zero amounts: log(eps), finite
    assert np.all(out[LOG_AMOUNT].to_numpy()[zero] == math.log(eps))
    assert np.isfinite(out[LOG_AMOUNT].to_numpy()).all()


def test_clean_does_not_modify_its_input(raw: pd.DataFrame) -> None:
    before = raw.copy()
    clean(raw, 0.001)
    pd.testing.assert_frame_equal(raw, before)


def test_summarise_counts(raw: pd.DataFrame) -> None:
    base = raw.drop_duplicates().reset_index(drop=True)
    assert not base.duplicated().any()
    fraud_rows = base.index[base[LABEL] == 1]
    normal_rows = base.index[base[LABEL] == 0]
    # 3 normal rows copied once, one of them a second time, one fraud copied twice: 6 copies.
    copies = [normal_rows[0], normal_rows[1], normal_rows[2], normal_rows[0],
              fraud_rows[0], fraud_rows[0]]
    table = pd.concat([base, base.loc[copies]], ignore_index=True)
    table = table.sample(frac=1.0, random_state=0).reset_index(drop=True)

    summary = summarise(table)
    frauds = int(base[LABEL].sum()) + 2
    assert summary["rows"] == len(base) + 6
    assert summary["frauds"] == frauds
    assert summary["fraud_rate"] == pytest.approx(frauds / (len(base) + 6))
    assert summary["duplicate_rows"] == 6
    assert summary["duplicate_frauds"] == 2
    assert summary["amount_zero_rows"] == int((table["Amount"] == 0).sum())
    json.dumps(summary, allow_nan=False)  # what the stage writes
    assert all(type(v) in (int, float) for v in summary.values())


def test_summarise_no_duplicates(raw: pd.DataFrame) -> None:
    summary = summarise(raw.drop_duplicates())
    assert summary["duplicate_rows"] == 0 and summary["duplicate_frauds"] == 0


# --- split --------------------------------------------------------------------------------------

def settings(test_size: float = 0.2, val_size: float = 0.2, stratify: bool = True,
             method: str | None = None, group: bool = False) -> SplitParams:
    return SplitParams(method=method or ("stratified" if stratify else "random"),
                       group_duplicates=group, test_size=test_size, val_size=val_size)


def expected_sizes(n: int, test_size: float, val_size: float) -> tuple[int, int, int]:
    test = math.ceil(test_size * n)
    val = math.ceil(val_size * (n - test))
    return n - test - val, val, test


@pytest.mark.parametrize("n", [3000, 2999, 1001])
@pytest.mark.parametrize(("test_size", "val_size"), [(0.2, 0.2), (0.25, 0.1)])
@pytest.mark.parametrize("stratify", [True, False])
def test_split_sizes_and_content(cleaned: pd.DataFrame, n: int, test_size: float,
                                 val_size: float, stratify: bool) -> None:
    table = cleaned.iloc[:n].reset_index(drop=True)
    parts = split(table, settings(test_size, val_size, stratify), seed=42)
    assert (len(parts.train), len(parts.val), len(parts.test)) == \
        expected_sizes(n, test_size, val_size)
    for part in (parts.train, parts.val, parts.test):
        assert list(part.columns) == TABLE_COLUMNS
        assert part.index.equals(pd.RangeIndex(len(part)))
    # every row in exactly one split (compared as multisets: the data has duplicate rows)
    together = pd.concat([parts.train, parts.val, parts.test], ignore_index=True)
    key = TABLE_COLUMNS
    pd.testing.assert_frame_equal(
        together.sort_values(key).reset_index(drop=True),
        table.sort_values(key).reset_index(drop=True))


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_split_stratified_fraud_counts(cleaned: pd.DataFrame, seed: int) -> None:
    n, frauds = len(cleaned), int(cleaned[LABEL].sum())
    parts = split(cleaned, settings(), seed)
    counts = [int(p[LABEL].sum()) for p in (parts.train, parts.val, parts.test)]
    assert sum(counts) == frauds
    for part, count in zip((parts.train, parts.val, parts.test), counts, strict=True):
        assert abs(count - frauds * len(part) / n) <= 1, (count, len(part))


def test_split_same_seed_same_result(cleaned: pd.DataFrame) -> None:
    first = split(cleaned, settings(), 7)
    second = split(cleaned, settings(), 7)
    for a, b in zip((first.train, first.val, first.test),
                    (second.train, second.val, second.test), strict=True):
        pd.testing.assert_frame_equal(a, b)


def test_split_different_seed_different_result(cleaned: pd.DataFrame) -> None:
    first = split(cleaned, settings(), 7)
    second = split(cleaned, settings(), 8)
    for a, b in zip((first.train, first.val, first.test),
                    (second.train, second.val, second.test), strict=True):
        assert len(a) == len(b)
        assert not a.equals(b)


def few_frauds_table(cleaned: pd.DataFrame, rows: int, frauds: int) -> pd.DataFrame:
    normal = cleaned[cleaned[LABEL] == 0].iloc[:rows - frauds]
    fraud = cleaned[cleaned[LABEL] == 1].iloc[:frauds]
    return pd.concat([normal, fraud], ignore_index=True)


def test_split_without_fraud_names_the_split(cleaned: pd.DataFrame) -> None:
    table = few_frauds_table(cleaned, 300, 1)  # one fraud: two splits must lack fraud
    for seed in range(5):
        with pytest.raises(PipelineError) as info:
            split(table, settings(stratify=False), seed)
        message = str(info.value)
        assert any(f"the {name} split would hold no fraud rows" in message
                   for name in ("train", "val", "test")), message
        assert "1 frauds in all" in message and "split.method" in message


def test_split_without_fraud_names_the_right_split(cleaned: pd.DataFrame,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """3 frauds, not stratified: the named split is the first one really without fraud."""
    import fraud.data.prepare as data_module

    real = data_module._random_assignment
    drawn: list[np.ndarray] = []

    def recording(*args: Any, **kwargs: Any) -> np.ndarray:
        drawn.append(real(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(data_module, "_random_assignment", recording)
    table = few_frauds_table(cleaned, 300, 3)
    labels = table[LABEL].to_numpy()
    named: set[str] = set()
    for seed in range(30):
        drawn.clear()
        try:
            split(table, settings(stratify=False), seed)
        except PipelineError as error:
            (assignment,) = drawn
            frauds = [int(labels[assignment == index].sum()) for index in range(3)]
            empty = [name for name, count in zip(("train", "val", "test"), frauds, strict=True)
                     if not count]
            assert empty
            rows = int((assignment == ("train", "val", "test").index(empty[0])).sum())
            assert (f"the {empty[0]} split would hold no fraud rows ({rows:,} "
                    f"rows; 3 frauds in all)") in str(error)
            named.add(empty[0])
    assert len(named) >= 2  # the seeds exercised more than one split name


def test_split_too_few_frauds_to_stratify(cleaned: pd.DataFrame) -> None:
    table = few_frauds_table(cleaned, 300, 1)
    with pytest.raises(PipelineError, match=r"cannot split 300 rows with 1 frauds"):
        split(table, settings(), 0)


def with_duplicates(cleaned: pd.DataFrame, copies: int = 300, seed: int = 0) -> pd.DataFrame:
    """`cleaned` plus copies of some rows (frauds among them) at later Times: identical
    model inputs, as the real data's 9,144 repeats (Time aside)."""
    rng = np.random.default_rng(seed)
    frauds = np.nonzero(cleaned[LABEL].to_numpy() == 1)[0][:20]
    picked = np.concatenate([frauds, rng.choice(len(cleaned), copies - len(frauds))])
    extra = cleaned.iloc[picked].copy()
    extra["Time"] = extra["Time"] + rng.uniform(1, 50_000, len(extra)).round()
    table = pd.concat([cleaned, extra], ignore_index=True)
    return table.sort_values("Time", kind="stable").reset_index(drop=True)


def split_of_each_input(parts: Any) -> pd.DataFrame:
    frames = [getattr(parts, name).assign(split=name) for name in ("train", "val", "test")]
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("method", ["stratified", "random", "time"])
def test_grouped_duplicates_never_straddle_splits(cleaned: pd.DataFrame, method: str) -> None:
    table = with_duplicates(cleaned)
    parts = split(table, settings(method=method, group=True), seed=3)
    together = split_of_each_input(parts)
    assert (together.groupby(FEATURES)["split"].nunique() == 1).all()
    assert parts.summary["duplicates_across_splits"] == 0
    ungrouped = split(table, settings(method=method, group=False), seed=3)
    assert ungrouped.summary["duplicates_across_splits"] > 0  # the control: they would
    assert (split_of_each_input(ungrouped).groupby(FEATURES)["split"].nunique() > 1).any()


def test_grouped_stratified_split_keeps_every_row_and_the_sizes(cleaned: pd.DataFrame) -> None:
    table = with_duplicates(cleaned)
    parts = split(table, settings(group=True), seed=5)
    together = split_of_each_input(parts).drop(columns="split")
    pd.testing.assert_frame_equal(
        together.sort_values(TABLE_COLUMNS).reset_index(drop=True),
        table.sort_values(TABLE_COLUMNS).reset_index(drop=True))
    expected = expected_sizes(len(table), 0.2, 0.2)
    for part, size in zip((parts.train, parts.val, parts.test), expected, strict=True):
        assert abs(len(part) - size) <= 0.02 * len(table)  # groups, not rows, are drawn
    assert parts.summary["duplicates_dropped"] == 0


@pytest.mark.parametrize("group", [True, False])
def test_time_split_is_ordered(cleaned: pd.DataFrame, group: bool) -> None:
    table = with_duplicates(cleaned).sample(frac=1.0, random_state=1)  # order must not matter
    parts = split(table, settings(method="time", group=group), seed=0)
    assert parts.train["Time"].max() < parts.val["Time"].min()
    assert parts.val["Time"].max() < parts.test["Time"].min()
    kept = len(parts.train) + len(parts.val) + len(parts.test)
    assert kept + parts.summary["duplicates_dropped"] == len(table)
    assert (parts.summary["duplicates_dropped"] > 0) == group
    assert len(parts.train) == expected_sizes(len(table), 0.2, 0.2)[0] or \
        table["Time"].duplicated().any()  # a tie in Time at the cut moves it


def test_time_split_does_not_depend_on_the_seed(cleaned: pd.DataFrame) -> None:
    first = split(cleaned, settings(method="time"), 1)
    second = split(cleaned, settings(method="time"), 2)
    pd.testing.assert_frame_equal(first.test, second.test)


def test_split_summary_counts(cleaned: pd.DataFrame) -> None:
    parts = split(cleaned, settings(group=True), 0)
    for name in ("train", "val", "test"):
        part = getattr(parts, name)
        assert parts.summary[f"{name}_rows"] == len(part)
        assert parts.summary[f"{name}_frauds"] == int(part[LABEL].sum())
    assert all(type(v) is int for v in parts.summary.values())


# --- scale --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def arrays(cleaned: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    parts = split(cleaned, settings(), 3)
    return {name: features_and_labels(getattr(parts, name)) for name in ("train", "val", "test")}


def test_features_and_labels(arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    features, labels = arrays["train"]
    assert features.dtype == np.float64 and features.shape[1] == N_FEATURES
    assert labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1}


def test_scaler_is_fit_on_train_only(arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    train, val, test = (arrays[n][0] for n in ("train", "val", "test"))
    scaler = fit_scaler(train)
    np.testing.assert_allclose(scaler.mean_, train.mean(axis=0))
    np.testing.assert_allclose(scaler.scale_, train.std(axis=0))
    everything = np.concatenate([train, val, test])
    assert not np.allclose(scaler.mean_, everything.mean(axis=0))

    big = 1e9  # no clipping: the exact standardisation
    scaled_train = scale(train, scaler, big)
    np.testing.assert_allclose(scaled_train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(scaled_train.std(axis=0), 1, atol=1e-4)
    for features in (val, test):
        expected = (features - train.mean(axis=0)) / train.std(axis=0)
        np.testing.assert_allclose(scale(features, scaler, big), expected, rtol=1e-5, atol=1e-5)
        # val / test are not standardised on their own statistics
        assert not np.allclose(scale(features, scaler, big).mean(axis=0), 0, atol=1e-3)


@pytest.mark.parametrize("clip", [0.5, 2.0, 5.0])
def test_scale_clips_and_is_float32(arrays: dict[str, tuple[np.ndarray, np.ndarray]],
                                    clip: float) -> None:
    train = arrays["train"][0]
    scaler = fit_scaler(train)
    for name in ("train", "val", "test"):
        out = scale(arrays[name][0], scaler, clip)
        assert out.dtype == np.float32
        assert out.shape == arrays[name][0].shape
        assert np.abs(out).max() <= clip
        assert (np.abs(out) == np.float32(clip)).any()  # the clip was reached, and honoured
    unclipped = scaler.transform(train)
    inside = np.abs(unclipped) < clip
    np.testing.assert_allclose(scale(train, scaler, clip)[inside],
                               unclipped[inside].astype(np.float32))


def test_scaler_to_json(arrays: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
    scaler = fit_scaler(arrays["train"][0])
    data = scaler_to_json(scaler, 5)
    assert set(data) == {"inputs", "log_input", "features", "mean", "scale", "clip"}
    assert data["inputs"] == INPUT_COLUMNS and data["log_input"] == "Amount"
    assert data["features"] == FEATURES
    assert data["clip"] == 5.0 and type(data["clip"]) is float
    assert len(data["mean"]) == len(data["scale"]) == N_FEATURES
    assert all(type(v) is float for v in data["mean"] + data["scale"])
    np.testing.assert_array_equal(data["mean"], scaler.mean_)
    np.testing.assert_array_equal(data["scale"], scaler.scale_)
    assert json.loads(json.dumps(data, allow_nan=False)) == data


# --- bad raw CSVs -------------------------------------------------------------------------------

BAD_ROWS, BAD_RATE, BAD_SEED = 200, 0.05, 5


@pytest.fixture(scope="module")
def good_lines(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    path = tmp_path_factory.mktemp("good") / "creditcard.csv"
    write_creditcard_csv(generate_creditcard(BAD_ROWS, BAD_RATE, BAD_SEED), path)
    return path.read_text(encoding="ascii").splitlines()


def edit_header(old: str, new: str) -> Callable[[list[str]], bytes]:
    def make(lines: list[str]) -> bytes:
        lines = list(lines)
        lines[0] = lines[0].replace(f'"{old}"', f'"{new}"')
        return join(lines)

    return make


def drop_column(column: str) -> Callable[[list[str]], bytes]:
    index = RAW_COLUMNS.index(column)

    def make(lines: list[str]) -> bytes:
        return join([",".join(c for i, c in enumerate(line.split(",")) if i != index)
                     for line in lines])

    return make


def add_column(lines: list[str]) -> bytes:
    return join([lines[0] + ',"Extra"', *(line + ",0" for line in lines[1:])])


def extra_field(line_no: int) -> Callable[[list[str]], bytes]:
    def make(lines: list[str]) -> bytes:
        lines = list(lines)
        lines[line_no - 1] += ",7"
        return join(lines)

    return make


def missing_field(line_no: int) -> Callable[[list[str]], bytes]:
    def make(lines: list[str]) -> bytes:
        lines = list(lines)
        lines[line_no - 1] = lines[line_no - 1].rsplit(",", 1)[0]
        return join(lines)

    return make


def no_fraud(lines: list[str]) -> bytes:
    return join([lines[0], *(line.rsplit(",", 1)[0] + ',"0"' for line in lines[1:])])


HTML = (b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n"
        b"<body><h1>Forbidden</h1></body></html>\n")

# id -> (content maker, fragments the message must contain besides the file's path)
BAD_CSVS: dict[str, tuple[Callable[[list[str]], bytes], tuple[str, ...]]] = {
    "empty": (lambda lines: b"", ("empty",)),
    "whitespace": (lambda lines: b"  \n\t\n\n   ", ("empty",)),
    "html": (lambda lines: HTML, ("HTML",)),
    "html-indented": (lambda lines: b"\n\n  <html><body>Not found</body></html>", ("HTML",)),
    "header-only": (lambda lines: join(lines[:1]), ("no data rows",)),
    "missing-column": (drop_column("V7"), ("missing column(s) 'V7'",)),
    "extra-column": (add_column, ("unexpected column(s) 'Extra'",)),
    "renamed-column": (edit_header("V2", "V2x"),
                       ("column 3 is named 'V2x', expected 'V2'",)),
    "duplicated-column": (edit_header("V3", "V2"), ("'V2' appear more than once",)),
    "non-numeric": (set_cell(10, "V3", "abc"), ("line 10", "'V3'", "'abc'", "not a number")),
    "empty-cell": (set_cell(7, "V5", ""), ("line 7", "'V5'", "missing")),
    "nan-cell": (set_cell(8, "V9", "NaN"), ("line 8", "'V9'", "nan")),
    "inf-cell": (set_cell(4, "V1", "inf"), ("line 4", "'V1'", "inf", "infinite")),
    "class-2": (set_cell(12, "Class", '"2"'), ("line 12", "'Class'", "2.0",
                                               "Class must be 0 (normal) or 1 (fraud)")),
    "class-text": (set_cell(13, "Class", "yes"), ("line 13", "'Class'", "'yes'")),
    "negative-amount": (set_cell(6, "Amount", "-12.5"), ("line 6", "'Amount'", "-12.5",
                                                         "negative")),
    "no-fraud": (no_fraud, ("no fraud rows", f"{BAD_ROWS} rows")),
    "ragged-long": (extra_field(9), ("line 9", "every row must have 31 fields")),
    "ragged-long-first-row": (extra_field(2), ("line 2", "every row must have 31 fields")),
    "ragged-short": (missing_field(5), ("line 5 has 30 field(s)", "every row must have 31")),
}


@pytest.mark.parametrize("case", BAD_CSVS)
def test_read_raw_csv_rejects(case: str, good_lines: list[str], tmp_path: Path) -> None:
    make, fragments = BAD_CSVS[case]
    path = tmp_path / "creditcard.csv"
    path.write_bytes(make(good_lines))
    with pytest.raises(PipelineError) as info:
        read_raw_csv(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message
    assert "np.float64" not in message  # values shown as a user typed them
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_read_raw_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="not found; run the download stage"):
        read_raw_csv(tmp_path / "absent.csv")


def test_read_raw_csv_counts_more_bad_cells(good_lines: list[str], tmp_path: Path) -> None:
    content = set_cell(5, "V4", "")(good_lines).decode().splitlines()
    content = set_cell(20, "V4", "")(content).decode().splitlines()
    path = tmp_path / "creditcard.csv"
    path.write_text("\n".join(content) + "\n", encoding="ascii")
    with pytest.raises(PipelineError, match=r"line 5, column 'V4'.*\(1 more such cells\)"):
        read_raw_csv(path)


# --- the clean stage, in-process for every bad file, as a subprocess for a few ----------------

def run_clean_in_process(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from fraud.core.cli import run
    from src.stages import clean as clean_stage

    with pytest.raises(SystemExit) as info:
        run(clean_stage.main, argv)
    return int(info.value.code), capsys.readouterr().err


def stage_paths(tmp_path: Path, write_params: Any, old_outputs: bool) -> dict[str, Path]:
    raw_dir, out_dir = tmp_path / "raw", tmp_path / "out"
    raw_dir.mkdir()
    out_dir.mkdir()
    paths = {"raw": raw_dir / "creditcard.csv", "out": out_dir / "cleaned.parquet",
             # The test files are not the real data: no checksum to check them against.
             "params": write_params({"clean.eps": "1e-08", "download.sha256": None})}
    if old_outputs:
        paths["out"].write_bytes(b"old parquet")
    return paths


def clean_args(paths: dict[str, Path]) -> list[str]:
    return ["--raw", str(paths["raw"]), "--out", str(paths["out"]), "--params",
            str(paths["params"])]


@pytest.mark.parametrize("case", BAD_CSVS)
def test_clean_stage_in_process_rejects(case: str, good_lines: list[str], tmp_path: Path,
                                        write_params: Any,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    paths = stage_paths(tmp_path, write_params, old_outputs=True)
    make, fragments = BAD_CSVS[case]
    paths["raw"].write_bytes(make(good_lines))
    code, err = run_clean_in_process(clean_args(paths), capsys)
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {paths['raw']}: "), err
    for fragment in fragments:
        assert fragment in lines[0]
    assert list((tmp_path / "out").iterdir()) == []  # stale outputs gone, nothing new


SUBPROCESS_CASES = ["empty", "renamed-column", "non-numeric", "ragged-long", "no-fraud"]


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_clean_stage_subprocess_rejects(case: str, good_lines: list[str], tmp_path: Path,
                                        write_params: Any, run_stage: Any,
                                        stage_error: Any) -> None:
    old = case in ("renamed-column", "non-numeric")
    paths = stage_paths(tmp_path, write_params, old_outputs=old)
    make, fragments = BAD_CSVS[case]
    paths["raw"].write_bytes(make(good_lines))
    proc = run_stage("clean", *clean_args(paths))
    line = stage_error(proc, f"error: {paths['raw']}: ", *fragments)
    assert line.startswith("error: ")
    assert not paths["out"].exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_clean_stage_subprocess_succeeds(good_lines: list[str], tmp_path: Path,
                                         write_params: Any, run_stage: Any) -> None:
    """The control for the failures above: the same command on a good file writes both outputs."""
    paths = stage_paths(tmp_path, write_params, old_outputs=True)
    paths["raw"].write_bytes(join(good_lines))
    proc = run_stage("clean", *clean_args(paths))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    table = pd.read_parquet(paths["out"])
    raw = read_raw_csv(paths["raw"])
    pd.testing.assert_frame_equal(table, clean(raw, 1e-08))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["cleaned.parquet"]
