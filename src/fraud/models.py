"""The models the pipeline trains and compares, and the dvc.yaml stage that trains each.

One home for the list: params.py validates names against it; the stages, the evaluation, the
plots and the experiment tools read it from here.
"""

from __future__ import annotations

from collections.abc import Sequence

from .errors import PipelineError, printable_names

STRATEGIES = ("baseline", "weighted", "oversample")
# The scikit-learn peers (stages train_logreg / train_gbdt), trained on the same scaled splits.
PEERS = ("logreg", "gbdt")
MODELS = STRATEGIES + PEERS
STRATEGY_ALIASES = {"resampled": "oversample"}
AUTO = "auto"  # train.strategy: the candidate with the best validation figure
# dvc.yaml's stage that trains each strategy (oversample's is train_resampled): name it in
# messages from here, never as f"train_{strategy}".
TRAIN_STAGES = {"baseline": "train_baseline", "weighted": "train_weighted",
                "oversample": "train_resampled", "logreg": "train_logreg", "gbdt": "train_gbdt"}


def require_models(names: Sequence[str], option: str) -> None:
    """The model names a stage's command line lists (`option`): each one of MODELS, none
    twice; else one line naming the option, as every stage's bad input is."""
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        raise PipelineError(f"{option}: {printable_names(unknown)} not among "
                            f"{', '.join(MODELS)}")
    if len(set(names)) != len(names):
        raise PipelineError(f"{option}: a model named twice ({printable_names(names)})")
