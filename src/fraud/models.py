"""The models the pipeline trains and compares, and the dvc.yaml stage that trains each.

One home for the list: params.py validates names against it; the stages, the evaluation, the
plots and the experiment tools read it from here.
"""

from __future__ import annotations

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
