"""Every kind of model, found by looking: each module of this package whose name does not
start with `_` (and is not base or registry) defines `KINDS`, a tuple of `ModelKind`.

Why discovery rather than a hand-kept list: adding a model is adding its module, with no
edit to any other library file. Order is each kind's `order`, then its name.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache
from pathlib import Path

from ..errors import PipelineError
from .base import EXPLANATIONS, NETWORK, SCIKIT, ModelKind

_NOT_KINDS = {"base", "registry"}


def _check(kind: ModelKind, module: str) -> None:
    if kind.family not in (NETWORK, SCIKIT) or kind.explanation not in EXPLANATIONS:
        raise PipelineError(f"fraud.kinds.{module}: {kind.name!r} has family {kind.family!r} "
                            f"and explanation {kind.explanation!r}; expected {NETWORK} or "
                            f"{SCIKIT}, and one of {', '.join(EXPLANATIONS)}")
    if kind.family == SCIKIT and None in (kind.section, kind.parse, kind.fit, kind.estimator,
                                          kind.fitted_problem, kind.logit_graph):
        raise PipelineError(f"fraud.kinds.{module}: the scikit-learn kind {kind.name!r} needs "
                            "section, parse, fit, estimator, fitted_problem and logit_graph")


@cache
def all_kinds() -> tuple[ModelKind, ...]:
    """The registered kinds, in order; a name or a stage twice is a programming error."""
    found: list[ModelKind] = []
    for info in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if info.name.startswith("_") or info.name in _NOT_KINDS:
            continue
        module = importlib.import_module(f"{__package__}.{info.name}")
        for kind in getattr(module, "KINDS", ()):
            _check(kind, info.name)
            found.append(kind)
    for attribute in ("name", "train_stage"):
        values = [getattr(kind, attribute) for kind in found]
        twice = sorted({value for value in values if values.count(value) > 1})
        if twice:
            raise PipelineError(f"fraud.kinds: {attribute} {', '.join(twice)} registered twice")
    return tuple(sorted(found, key=lambda kind: (kind.order, kind.name)))


def kind(name: str) -> ModelKind:
    """The kind named `name`; one line naming the registered ones otherwise."""
    for candidate in all_kinds():
        if candidate.name == name:
            return candidate
    raise PipelineError(f"unknown model {name!r}: expected one of "
                        f"{', '.join(k.name for k in all_kinds())}")


def family(name: str) -> tuple[ModelKind, ...]:
    """The kinds of one family (NETWORK or SCIKIT), in order."""
    return tuple(k for k in all_kinds() if k.family == name)


def kind_of_model(model: object) -> ModelKind:
    """The scikit-learn kind whose estimator fitted `model`."""
    for candidate in family(SCIKIT):
        if (type(model).__module__, type(model).__name__) == candidate.estimator:
            return candidate
    expected = " or ".join(k.estimator[1] for k in family(SCIKIT) if k.estimator)
    raise PipelineError(f"no model kind for a {type(model).__name__}: expected {expected}")
