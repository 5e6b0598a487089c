"""The model card beside an exported model: read strictly, and matched with its model file.

Shared by the commands that score with a card (predict, monitor): a card's threshold, costs
and reference were made for one file's bytes, so it applies to that file alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..core.decision import decision_from_card
from ..core.declaration import (
    CREDIT_CARD,
    CREDIT_CARD_LAYOUT,
    MAX_INPUTS,
    HistorySpec,
    Layout,
    shown_columns,
)
from ..core.files import file_sha256
from ..errors import PipelineError, printable

# A card is ~3 KB; a 1 GB one is not a card (and is not read whole).
MAX_CARD_BYTES = 1 << 20


def read_card(path: Path, required: bool) -> dict[str, Any] | None:
    if not path.is_file():
        if required:
            raise PipelineError(f"{path}: model card not found; pass --card CARD.json, or "
                                "--threshold to score without a card")
        return None
    if path.stat().st_size > MAX_CARD_BYTES:
        raise PipelineError(f"{path}: over {MAX_CARD_BYTES:,} bytes; not a model card")
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise PipelineError(f"{path}: not a valid model card "
                            f"({printable(str(error) or type(error).__name__, 200)})") from None
    if not isinstance(card, dict):
        raise PipelineError(f"{path}: not a valid model card (expected a JSON object)")
    columns = card.get("input_columns")
    if columns is not None and not (
            isinstance(columns, list) and 0 < len(columns) <= MAX_INPUTS
            and all(isinstance(c, str) for c in columns) and len(set(columns)) == len(columns)):
        raise PipelineError(f"{path}: the card's input_columns ({printable(columns, 60)}) are "
                            f"not a list of 1 to {MAX_INPUTS:,} distinct column names; export "
                            "the model again")
    if required:
        decision_from_card(card.get("decision"), card.get("threshold"), str(path))
    return card


def scoring_layout(path: Path, onnx_model: Any, card: dict[str, Any] | None,
                   card_path: Path) -> Layout:
    """The columns of a CSV to score: the model's inputs (`detector_inputs`), and the
    label, time, ids and entities its card declares (`data`; none without a card). A card
    whose input_columns are not the model's belongs to another model."""
    inputs, log_input = detector_inputs(path, onnx_model, card, card_path)
    columns = card.get("input_columns") if card else None
    if columns is not None and columns != list(inputs):
        raise PipelineError(f"{card_path}: the card's input_columns "
                            f"({printable(columns, 80)}) are not its model's "
                            f"({shown_columns(inputs)}); pass the model's own card (--card)")
    data = card.get("data") if card else None
    if data is None and list(inputs) == CREDIT_CARD_LAYOUT.inputs:
        # A card from before the data: section (or none) for the default table's model.
        data = {"label": CREDIT_CARD.label, "time": CREDIT_CARD.time}
    data = data if isinstance(data, dict) else {}

    def name(key: str) -> str | None:
        value = data.get(key)
        return value if isinstance(value, str) and value else None

    def value(key: str, default: float | str) -> float | str:
        found = data.get(key, default)
        return found if isinstance(found, int | float | str) and not isinstance(found, bool) \
            else default

    def names(key: str) -> tuple[str, ...]:
        found = data.get(key)
        return tuple(c for c in found if isinstance(c, str)) if isinstance(found, list) else ()

    ids = names("ids")
    history = card_history(data, card_path).columns()
    if any(c not in inputs for c in history):
        raise PipelineError(f"{card_path}: the card's history columns are not among its "
                            "model's inputs; pass the model's own card (--card)")
    numeric = [c for c in (inputs[:-1] if log_input else inputs) if c not in history]
    from .contract import check_categories

    if onnx_model is not None:
        found = json.loads(onnx_model.metadata.get("categorical", "[]"))
    else:  # a .keras detector: its card says (export.model_card's `categorical`)
        found = ((card or {}).get("categorical") or {}).get("columns")
    categorical = tuple(check_categories(str(card_path), found or [], inputs,
                                         "export the model again"))
    categorical_columns = tuple(column for column, _ in categorical)
    return Layout(label=name("label") or "", positive=value("positive", 1),
                  negative=value("negative", 0), time=name("time"), time_format="auto",
                  ids=ids, entities=tuple(e for e in names("entities") if e not in ids),
                  numeric=tuple(numeric), amount=log_input, drop=(), history=history,
                  categorical=categorical_columns)


def card_history(data: dict[str, Any], card_path: Path) -> HistorySpec:
    """The card's `data.history`: the history features its model reads (none: empty)."""
    found = data.get("history")
    if found is None:
        return HistorySpec()
    try:
        spec = HistorySpec(windows=tuple(int(w) for w in found["windows"]),
                           delay=int(found["delay"]), spending=tuple(found["spending"]),
                           risk=tuple(found["risk"]), time_flags=bool(found["time_flags"]))
        if list(spec.columns()) != list(found["columns"]):
            raise ValueError("columns")
    except (KeyError, TypeError, ValueError):
        raise PipelineError(f"{card_path}: its data.history is not what the export stage "
                            "writes; export the model again") from None
    return spec


def detector_inputs(path: Path, onnx_model: Any, card: dict[str, Any] | None, card_path: Path
                    ) -> tuple[tuple[str, ...], str | None]:
    """The model's raw input columns and its logged one: from the ONNX file's metadata
    (`onnx_model`: the loaded OnnxModel), or, for a file that records none (a .keras
    detector, an ONNX file not written by this project), from its card; without a card,
    the default declaration's (Credit Card Fraud), if the file takes that many columns (a
    .keras detector's width is checked once it is loaded)."""
    from .contract import read_detector_metadata

    if onnx_model is not None and "input_columns" in onnx_model.metadata:
        info = read_detector_metadata(onnx_model.metadata, str(path), "export")
        taken = getattr(onnx_model, "numeric_columns", onnx_model.columns)
        if len(info.inputs) != taken or len(info.categories) != onnx_model.columns - taken:
            raise PipelineError(f"{path}: names {len(info.inputs)} input columns but takes "
                                f"{taken}; export it again")
        return info.inputs, info.log_input
    columns = card.get("input_columns") if card else None
    if columns is None and (onnx_model is None
                            or onnx_model.columns == len(CREDIT_CARD_LAYOUT.inputs)):
        return tuple(CREDIT_CARD_LAYOUT.inputs), CREDIT_CARD_LAYOUT.amount
    if not isinstance(columns, list) or not columns \
            or not all(isinstance(c, str) for c in columns):
        raise PipelineError(f"{path}: the model file does not record its input columns; "
                            f"pass its model card (--card; {card_path} is missing or names "
                            "none), or score the .onnx model the export stage wrote")
    if onnx_model is not None and len(columns) != onnx_model.columns:
        raise PipelineError(f"{card_path}: names {len(columns)} input columns, but "
                            f"{path} takes {onnx_model.columns}; pass the model's own card")
    standardisation = (card or {}).get("standardisation")
    features = standardisation.get("features") if isinstance(standardisation, dict) else None
    logged = isinstance(features, list) and len(features) == len(columns) \
        and features[-1] != columns[-1]
    return tuple(columns), columns[-1] if logged else None


def require_model(path: Path) -> None:
    if not path.is_file():
        raise PipelineError(f"{path}: model not found; run `dvc repro export` (or pass the "
                            "path of an exported model)")


def card_sha256(card: dict[str, Any]) -> str | None:
    """The sha256 the card records of its model file (export's `files.onnx.sha256`)."""
    files = card.get("files")
    shipped = files.get("onnx") if isinstance(files, dict) else None
    sha = shipped.get("sha256") if isinstance(shipped, dict) else None
    return sha if isinstance(sha, str) and len(sha) == 64 \
        and all(c in "0123456789abcdef" for c in sha) else None


def check_card_model(card: dict[str, Any], card_path: Path, model: Path) -> None:
    """The card must be this model file's: its threshold, costs and reference were made
    for those bytes (a constant-0.99 file with the shipped card would flag every row)."""
    recorded = card_sha256(card)
    if recorded is None:
        raise PipelineError(f"{card_path}: records no sha256 of its model (files.onnx.sha256; "
                            f"an older card?), so it cannot be matched with {model}; export "
                            "again (dvc repro export), or pass --threshold to score without "
                            "a card")
    if recorded != file_sha256(model, "model"):
        raise PipelineError(f"{card_path}: is the card of another model, not of {model} "
                            "(their sha256 differ); pass the model's own card (--card), or "
                            "--threshold to score without a card")
