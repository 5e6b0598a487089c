"""A corpus of bad params files: each gives exit status 1, one `error:` line naming what is
wrong, no traceback, and no output. The download stage reads them (every stage loads the
params first; it is the cheapest to start), in-process for all and as a subprocess for a few.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from fraud.core.params import OVERFLOW_BOUNDS, UPPER_BOUNDS
from fraud.data.download import MIRROR_ENV

DELETE = object()  # as a value: remove the key


def edit(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *sections, key = dotted.split(".")
    node = raw
    for name in sections:
        node = node[name]
    if value is DELETE:
        del node[key]
    else:
        node[key] = value


# id -> (overrides, or the file's text/bytes, or None for no file; fragments of the error line)
BAD_PARAMS: dict[str, tuple[Any, tuple[str, ...]]] = {
    # the download section
    "url-empty": ({"download.url": ""}, ("download.url = ''", "non-empty string")),
    "url-number": ({"download.url": 5}, ("download.url = 5",)),
    "url-list": ({"download.url": ["a", "b"]}, ("download.url = ['a', 'b']",)),
    "sha256-short": ({"download.sha256": "abc"}, ("download.sha256 = 'abc'", "64 hexadecimal")),
    "sha256-not-hex": ({"download.sha256": "g" * 64}, ("download.sha256", "64 hexadecimal")),
    "sha256-number": ({"download.sha256": 123}, ("download.sha256 = 123",)),
    "timeout-zero": ({"download.timeout": 0}, ("download.timeout = 0", "seconds > 0")),
    "timeout-negative": ({"download.timeout": -1}, ("download.timeout = -1",)),
    "timeout-text": ({"download.timeout": "soon"}, ("download.timeout = 'soon'", "a number")),
    "timeout-infinite": ({"download.timeout": math.inf}, ("download.timeout = inf", "finite")),
    "timeout-nan": ({"download.timeout": math.nan}, ("download.timeout = nan", "finite")),
    "timeout-bool": ({"download.timeout": True}, ("download.timeout = True", "a number")),
    "retries-negative": ({"download.retries": -1}, ("download.retries = -1", ">= 0")),
    "retries-fraction": ({"download.retries": 1.5}, ("download.retries = 1.5", "whole")),
    "retries-text": ({"download.retries": "many"}, ("download.retries = 'many'",)),
    "deadline-zero": ({"download.deadline": 0}, ("download.deadline = 0", "seconds > 0")),
    "deadline-negative": ({"download.deadline": -5}, ("download.deadline = -5",)),
    "deadline-text": ({"download.deadline": "soon"}, ("download.deadline = 'soon'",)),
    "deadline-infinite": ({"download.deadline": math.inf}, ("download.deadline = inf",
                                                            "finite")),
    "deadline-null": ({"download.deadline": None}, ("download.deadline = None", "a number")),
    "max-bytes-zero": ({"download.max_bytes": 0}, ("download.max_bytes = 0", ">= 1")),
    "max-bytes-negative": ({"download.max_bytes": -1}, ("download.max_bytes = -1",)),
    "max-bytes-fraction": ({"download.max_bytes": 1.5}, ("download.max_bytes = 1.5", "whole")),
    "max-bytes-with-unit": ({"download.max_bytes": "1GB"}, ("download.max_bytes = '1GB'",)),
    "max-bytes-400-digits": ({"download.max_bytes": 10 ** 400}, ("download.max_bytes = 1000",
                                                                 "a number")),
    "synthetic-rows-few": ({"download.synthetic_rows": 10}, ("download.synthetic_rows = 10",)),
    "fraud-rate-high": ({"download.synthetic_fraud_rate": 0.6},
                        ("download.synthetic_fraud_rate = 0.6",)),
    "fraud-rate-zero": ({"download.synthetic_fraud_rate": 0},
                        ("download.synthetic_fraud_rate = 0",)),
    "synthetic-seed-negative": ({"download.synthetic_seed": -1},
                                ("download.synthetic_seed = -1",)),
    "synthetic-seed-too-big": ({"download.synthetic_seed": 2 ** 32},
                               ("download.synthetic_seed = 4294967296",)),
    "download-unknown-key": ({"download.mirror": "x"}, ("unknown key(s) 'download.mirror'",)),
    "download-missing-deadline": ({"download.deadline": DELETE},
                                  ("missing key(s) download.deadline",)),
    "download-not-a-mapping": ({"download": "fast"}, ("section 'download'", "not a mapping")),
    "download-null": ({"download": None}, ("section 'download'",)),
    # the top level, and other sections
    "seed-negative": ({"seed": -1}, ("seed = -1",)),
    "seed-text": ({"seed": "x"}, ("seed = 'x'",)),
    "seed-fraction": ({"seed": 1.5}, ("seed = 1.5", "whole")),
    "seed-too-big": ({"seed": 2 ** 32}, ("seed = 4294967296",)),
    "seed-bool": ({"seed": True}, ("seed = True",)),
    "seed-list": ({"seed": [1, 2]}, ("seed = [1, 2]",)),
    "seed-10k-characters": ({"seed": "x" * 10_000}, ("seed = 'xxxx", "(10,000 characters)")),
    "unknown-top-level-key": ({"bogus": 1}, ("unknown key(s) 'bogus'",)),
    "numeric-top-level-key": ({7: 1}, ("unknown key(s) '7'",)),
    "missing-seed": ({"seed": DELETE}, ("missing key 'seed'",)),
    "clean-eps-zero": ({"clean.eps": 0}, ("clean.eps = 0",)),
    "clean-not-a-mapping": ({"clean": 5}, ("section 'clean'",)),
    "scale-clip-negative": ({"scale.clip": -1}, ("scale.clip = -1",)),
    "model-dropout-one": ({"model.dropout": 1}, ("model.dropout = 1",)),
    # the file itself
    "no-file": (None, ("not found",)),
    "empty-file": ("", ("expected a mapping",)),
    "a-list": ("- 1\n- 2\n", ("expected a mapping",)),
    "invalid-yaml": ("seed: [1\n", ("not valid YAML",)),
    "tab-indented": ("download:\n\turl: x\n", ("not valid YAML",)),
    "python-object-tag": ("seed: !!python/object/apply:os.system ['true']\n",
                          ("not valid YAML",)),
    "latin1": ("seed: 42\n# café\n".encode("latin-1"), ("line 2: not UTF-8", "0xe9")),
    "utf16": ("seed: 42\n".encode("utf-16"), ("not UTF-8",)),
    "a-folder": ("folder", ("not a file",)),
    "two-megabytes": ("# " + "x" * 2_000_000 + "\n", ("larger than 1,048,576 bytes",)),
    "nested-100k-deep": ("seed: " + "[" * 100_000 + "]" * 100_000 + "\n",
                         ("not usable YAML",)),
    "int-of-5000-digits": ("seed: " + "9" * 5000 + "\n", ("not usable YAML",)),
    "alias-bomb": (("a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n"
                    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c]\n"
                    "seed: [*d, *d, *d, *d, *d, *d, *d, *d, *d]\n"),
                   ("line 2, column", "aliases (*name) are not allowed")),
    "duplicate-key": ("seed: 1\nseed: 2\n", ("line 2, column 1: duplicate key 'seed'",)),
    "duplicate-nested-key": ("train:\n  epochs: 1\n  epochs: 5\n",
                             ("line 3, column 3: duplicate key 'epochs'",)),
    # types a YAML edit can give any key
    "strategy-list": ({"train.strategy": []}, ("train.strategy = []", "one of auto")),
    "strategy-mapping": ({"train.strategy": {}}, ("train.strategy = {}", "one of auto")),
    "candidates-of-mappings": ({"evaluate.candidates": [{}]}, ("evaluate.candidates = [{}]",)),
    # the calibrate section
    "calibrate-method-unknown": ({"calibrate.method": "beta"},
                                 ("calibrate.method = 'beta'", "prior, platt, isotonic, auto")),
    "calibrate-method-number": ({"calibrate.method": 1}, ("calibrate.method = 1",)),
    "calibrate-folds-one": ({"calibrate.folds": 1}, ("calibrate.folds = 1", ">= 2")),
    "calibrate-folds-fraction": ({"calibrate.folds": 2.5}, ("calibrate.folds = 2.5", "whole")),
    "calibrate-bins-zero": ({"calibrate.bins": 0}, ("calibrate.bins = 0", ">= 2")),
    "calibrate-bins-text": ({"calibrate.bins": "many"}, ("calibrate.bins = 'many'",)),
    "calibrate-unknown-key": ({"calibrate.bining": "mass"}, ("calibrate.bining",)),
    "calibrate-missing-key": ({"calibrate.folds": DELETE}, ("calibrate.folds",)),
    "expected-cost-without-costs": ({"evaluate.threshold": "expected_cost",
                                     "evaluate.cost_fp": 0, "evaluate.cost_fn": 0},
                                    ("'expected_cost' needs a cost",)),
    "c-grid-of-1000": ({"logreg.c_grid": list(range(1, 1001))}, ("of at most 100 values",)),
    # what an unknown key echoes: cut, control characters escaped
    "ansi-newline-key": ({"train.\x1b[31mred\nline": 1},
                         ("unknown key(s) 'train.\\x1b[31mred\\nline'",)),
    "600k-key": ({"train." + "k" * 600_000: 1}, ("(600,006 characters)",)),
    # numbers that would overflow training or a sum: init_bias crashed on NaN losses after
    # DVC had deleted its git-tracked outputs
    "learning-rate-1e300": ({"model.learning_rate": 1e300},
                            ("model.learning_rate = 1e+300", "at most 1 ", "NaN")),
    "c-grid-subnormal": ({"logreg.c_grid": [1e-320, 1]},
                         ("logreg.c_grid[0] = 1e-320", "from 1e-08 to 1e+08")),
    "c-grid-huge": ({"logreg.c_grid": [0.1, 1e300]}, ("logreg.c_grid[1] = 1e+300",)),
    **{f"over-{key}": ({key: high * 10}, (f"{key} = ", f"at most {high:g} ({reason})"))
       for key, (high, reason) in OVERFLOW_BOUNDS.items()},
    # an interpolation: DVC resolves it into params.yaml when it applies any -S
    "interpolation-env": ({"download.url": "${oc.env:HOME}"},
                          ("download.url holds an interpolation", "'${oc.env:HOME}'",
                           "write the value itself")),
    "interpolation-in-a-list": ({"evaluate.candidates": ["baseline", "${seed}"]},
                                ("evaluate.candidates[1] holds an interpolation",)),
    "interpolation-in-a-key": ({"train.${HOME}": 1}, ("holds an interpolation",)),
    # every upper bound: one over it is refused before any work
    **{f"over-{key}": ({key: int(high) + 1}, (f"{key} = {int(high) + 1}",
                                             f"at most {int(high):,}"))
       for key, high in UPPER_BOUNDS.items()},
}


def test_the_corpus_is_large_enough() -> None:
    assert len(BAD_PARAMS) >= 45


def write_case(case: str, folder: Path, repo_params_raw: dict[str, Any]) -> Path:
    content, _ = BAD_PARAMS[case]
    path = folder / "params.yaml"
    if isinstance(content, dict):
        raw = copy.deepcopy(repo_params_raw)
        raw["download"]["url"] = str(folder / "no-such-source.csv")  # never the network
        for dotted, value in content.items():
            edit(raw, dotted, value) if isinstance(dotted, str) else raw.update({dotted: value})
        path.write_text(yaml.safe_dump(raw, sort_keys=False, width=10 ** 9), encoding="utf-8")
    elif content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    return path


def check_one_error_line(code: int, err: str, fragments: tuple[str, ...]) -> None:
    assert code == 1, (code, err[-3000:])
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err[-3000:]
    assert len(lines[0]) < 1000, lines[0][:3000]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


@pytest.mark.parametrize("case", BAD_PARAMS)
def test_bad_params_in_process(case: str, tmp_path: Path, repo_params_raw: dict[str, Any],
                               capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from fraud.core.cli import run
    from src.stages import download as download_stage

    monkeypatch.delenv(MIRROR_ENV, raising=False)
    params = write_case(case, tmp_path, repo_params_raw)
    out = tmp_path / "raw" / "creditcard.csv"
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run(download_stage.main, ["--out", str(out), "--params", str(params)])
    check_one_error_line(int(info.value.code or 0), capsys.readouterr().err,
                         BAD_PARAMS[case][1])
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


@pytest.mark.parametrize("case", ["latin1", "a-folder", "nested-100k-deep", "deadline-zero"])
def test_bad_params_subprocess(case: str, tmp_path: Path, repo_params_raw: dict[str, Any],
                               run_stage: Any) -> None:
    params = write_case(case, tmp_path, repo_params_raw)
    out = tmp_path / "raw" / "creditcard.csv"
    proc = run_stage("download", "--out", out, "--params", params)
    check_one_error_line(proc.returncode, proc.stderr, BAD_PARAMS[case][1])
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


# Any value a hand edit or `dvc exp run -S` can put under any key: accepted, or one short line.
HOSTILE_VALUES = [[], {}, None, "", " ", "x" * 100_000, "\x1b[2J\n", -1e308, 1e308, 10 ** 400,
                  True, [[[]]], "nan", {"a": [1]}, [None], -0.0, 2 ** 63, "1e999"]


def leaf_keys(raw: dict[str, Any], prefix: str = "") -> list[str]:
    return [key for name, value in raw.items()
            for key in (leaf_keys(value, f"{prefix}{name}.") if isinstance(value, dict)
                        else [f"{prefix}{name}"])]


def test_every_key_with_any_value_is_accepted_or_one_short_line(
        repo_params_raw: dict[str, Any]) -> None:
    from fraud.core.params import parse_params
    from fraud.errors import PipelineError

    keys = leaf_keys(repo_params_raw)
    assert len(keys) >= 40
    refused = 0
    for dotted in keys:
        for value in HOSTILE_VALUES:
            raw = copy.deepcopy(repo_params_raw)
            edit(raw, dotted, value)
            try:
                parse_params(raw)
            except PipelineError as error:
                message = str(error)
                assert "\n" not in message and len(message) < 400, (dotted, value, message)
                refused += 1
    assert refused >= len(keys) * (len(HOSTILE_VALUES) - 6)  # most of them are refused


def test_every_upper_bound_names_a_numeric_param(repo_params_raw: dict[str, Any]) -> None:
    from fraud.core.params import parse_params

    keys = set(leaf_keys(repo_params_raw))
    assert set(UPPER_BOUNDS) <= keys and set(OVERFLOW_BOUNDS) <= keys
    bounds = {**UPPER_BOUNDS, **{key: high for key, (high, _) in OVERFLOW_BOUNDS.items()}}
    for key, high in bounds.items():  # the bound itself is a valid value
        raw = copy.deepcopy(repo_params_raw)
        edit(raw, key, int(high) if key in UPPER_BOUNDS else high)
        parse_params(raw)
