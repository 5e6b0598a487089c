"""The models the pipeline trains and compares, and the dvc.yaml stage that trains each.

The names come from the registry of model kinds (src/fraud/kinds: one module per kind);
params.py validates names against them; the stages, the evaluation, the plots and the
experiment tools read them from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import PipelineError, printable_names
from ..kinds.base import NETWORK, SCIKIT
from ..kinds.registry import all_kinds, family

# The Keras strategies of one network (src/stages/train.py trains them).
STRATEGIES = tuple(kind.name for kind in family(NETWORK))
# The scikit-learn peers (stages train_logreg, train_gbdt, ...), on the same scaled splits.
PEERS = tuple(kind.name for kind in family(SCIKIT))
MODELS = tuple(kind.name for kind in all_kinds())
STRATEGY_ALIASES = {"resampled": "oversample"}
AUTO = "auto"  # train.strategy: the candidate with the best validation figure
# dvc.yaml's stage that trains each strategy (oversample's is train_resampled): name it in
# messages from here, never as f"train_{strategy}".
TRAIN_STAGES = {kind.name: kind.train_stage for kind in all_kinds()}


def require_models(names: Sequence[str], option: str) -> None:
    """The model names a stage's command line lists (`option`): each one of MODELS, none
    twice; else one line naming the option, as every stage's bad input is."""
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise PipelineError(f"{option}: {printable_names(unknown)} not among "
                            f"{', '.join(MODELS)}")
    if len(set(names)) != len(names):
        raise PipelineError(f"{option}: a model named twice ({printable_names(names)})")
