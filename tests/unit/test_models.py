"""models.require_models: the model lists stages read from their command lines."""

from __future__ import annotations

import pytest

from fraud.core.models import MODELS, require_models
from fraud.errors import PipelineError


def test_every_known_model_once_is_accepted() -> None:
    require_models(MODELS, "--models")
    require_models(["gbdt"], "--model")


@pytest.mark.parametrize(("names", "message"), [
    (["baseline", "forest"], "--models: 'forest' not among baseline, weighted"),
    (["gbdt", "gbdt"], "--models: a model named twice ('gbdt', 'gbdt')"),
    (["bad\nname"], "--models: 'bad\\nname' not among"),
], ids=["unknown", "twice", "control-characters-escaped"])
def test_a_bad_list_is_one_line_naming_the_option(names: list[str], message: str) -> None:
    with pytest.raises(PipelineError) as raised:
        require_models(names, "--models")
    assert message in str(raised.value) and "\n" not in str(raised.value)
