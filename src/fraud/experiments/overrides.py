"""A sweep's `-S key=value` values read exactly as DVC writes them and as the stages read them.

`dvc exp run -S` parses each value with Hydra's override grammar, writes params.yaml with
ruamel.yaml (YAML 1.2) and records that reading; the stages read params.yaml with PyYAML
(YAML 1.1). The two disagree on plain scalars such as `1:30` (a string for DVC, 90 for the
stages) or `yes` ('yes' / True), so a check on any third reading (PyYAML on the raw value,
as before) passed values that trained something else than DVC records. Here the value goes
through DVC's own writer (`dvc.utils.hydra.apply_overrides`) on a scratch copy of the params
file, and both readings of the result are compared: a value is accepted only when they
agree, after the pipeline's own typing.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PipelineError, printable

# Hydra's functions (choice, range, interval, glob, sort, shuffle, tag, int, str, json_str,
# extend_list...): a call outside quotes either makes several experiments of one -S or turns
# the value into something this check would have to evaluate as Hydra does.
_QUOTED = re.compile(r"'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"")
_CALL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\s*\(")


@dataclass(frozen=True)
class Reading:
    """One override's value in the written params file: as DVC records it (YAML 1.2) and as
    the stages read it (YAML 1.1), with the line DVC wrote."""
    dvc: Any
    stage: Any
    stage_params: Any               # the whole file as the stages read it


def check_syntax(what: str, key: str, text: str) -> None:
    """Refuses what DVC would not pass as one plain value: interpolation, sweeps, functions,
    and text Hydra's grammar cannot parse. `what` names the option for the message."""
    shown = f"{what} {printable(key, 60)[1:-1]}={printable(text, 40)[1:-1]}"
    if "${" in text:
        raise PipelineError(f"{shown}: ${{...}} is interpolation, which DVC resolves when it "
                            "writes params.yaml (an environment variable or another key's "
                            "value would end up in the experiment's commit); write the value "
                            "itself")
    if _CALL.search(_QUOTED.sub("''", text)):
        raise PipelineError(f"{shown}: Hydra's functions and sweeps (choice(), range(), "
                            "interval(), glob(), sort(), shuffle(), tag(), int()...) are not "
                            "values; list the values with --grid KEY=V1,V2")
    from dvc.utils.hydra import to_hydra_overrides
    from hydra.core.override_parser.types import ValueType

    try:
        [override] = to_hydra_overrides([f"{key}={text}"])
    except Exception as error:  # hydra's OverrideParseException, and anything it wraps
        reason = printable(str(error).splitlines()[0] if str(error) else "", 80)[1:-1]
        raise PipelineError(f"{shown}: not a value DVC's -S can read (Hydra's override "
                            f"grammar: {reason}); quote it, e.g. {key}='...'") from None
    if override.value_type != ValueType.ELEMENT:
        raise PipelineError(f"{shown}: DVC would make one experiment of each item of this "
                            "list; one value per option (a comma inside a value: quote it, "
                            "KEY='a,b'), several values with --grid KEY=V1,V2")


@contextmanager
def scratch(text: str) -> Iterator[Path]:
    """A folder outside the project holding nothing but a copy of the params file."""
    with tempfile.TemporaryDirectory(prefix="sweep-params-") as folder:
        path = Path(folder) / "params.yaml"
        path.write_text(text, encoding="utf-8")
        yield path


def _at(data: Any, key: str) -> Any:
    for part in key.split("."):
        data = data[part]
    return data


def read_as_dvc_writes(original: str, overrides: Mapping[str, str], path: Path,
                       what: str) -> dict[str, Reading]:
    """Applies `overrides` with DVC's own code to `path` (reset to `original` first) and
    reads the result both ways. Syntax is checked first (check_syntax)."""
    from dvc.utils.hydra import apply_overrides
    from dvc.utils.serialize import parse_yaml as dvc_parse_yaml

    from ..core.params import parse_yaml

    for key, text in overrides.items():
        check_syntax(what, key, text)
    path.write_text(original, encoding="utf-8")
    try:
        apply_overrides(path, [f"{key}={text}" for key, text in overrides.items()])
    except Exception as error:  # DVC's InvalidArgumentError, ruamel's RepresenterError
        raise PipelineError(f"{what}: DVC cannot write it to params.yaml "
                            f"({printable(str(error), 120)[1:-1]})") from None
    written = path.read_text(encoding="utf-8")
    stage = parse_yaml(written, f"{what}: params.yaml as DVC writes it")
    recorded = dvc_parse_yaml(written, str(path))  # what `dvc exp show` and DVC's params see
    return {key: Reading(dvc=_at(recorded, key), stage=_at(stage, key), stage_params=stage)
            for key in overrides}
