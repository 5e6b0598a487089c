"""The model card beside an exported model: read strictly, and matched with its model file.

Shared by the commands that score with a card (predict, monitor): a card's threshold, costs
and reference were made for one file's bytes, so it applies to that file alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..decision import decision_from_card
from ..errors import PipelineError, printable, printable_names
from ..files import file_sha256
from .csv_scoring import INPUT_COLUMNS

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
    if columns is not None and columns != INPUT_COLUMNS:
        raise PipelineError(f"{path}: the model expects the columns {printable(columns)}; this "
                            f"command sends {printable_names(INPUT_COLUMNS, 3)}")
    if required:
        decision_from_card(card.get("decision"), card.get("threshold"), str(path))
    return card


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
