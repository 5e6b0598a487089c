"""The population stability index (PSI) of a batch's bin counts against a reference's.

    PSI = Σ_bins (a − e) · ln(a / e)

with e and a the reference's and the batch's share of rows in each bin: the symmetric
(Jeffreys) divergence of the two binned distributions. Bands, as the credit-scoring
practice names them (and Evidently and NannyML use): < 0.1 stable, 0.1–0.25 moderate shift,
≥ 0.25 major shift.
"""

from __future__ import annotations

import numpy as np

# A bin empty on one side would make ln(a / e) infinite; its share counts as this instead
# (Evidently's value). With 10 bins it caps one bin's term at about 0.1·ln(0.1/1e-4) = 0.69.
EMPTY_BIN_SHARE = 1e-4
MODERATE_PSI = 0.1
MAJOR_PSI = 0.25
STABLE, MODERATE, MAJOR = "stable", "moderate shift", "major shift"


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts to shares, with EMPTY_BIN_SHARE for empty bins (and all-empty counts)."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    result = counts / total if total > 0 else np.zeros_like(counts)
    return np.where(result > 0, result, EMPTY_BIN_SHARE)


def psi(reference_counts: np.ndarray, batch_counts: np.ndarray) -> float:
    """PSI of two histograms over the same bins (counts, not shares: either may be empty)."""
    expected, actual = shares(reference_counts), shares(batch_counts)
    if expected.shape != actual.shape:
        raise ValueError(f"bins differ: {expected.shape} and {actual.shape}")
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def band(value: float) -> str:
    """The PSI band's name: a value on a boundary belongs to the band above it."""
    if value < MODERATE_PSI:
        return STABLE
    return MODERATE if value < MAJOR_PSI else MAJOR


def psi_noise_floor(bins: int, reference_rows: int, batch_rows: int) -> float:
    """PSI expected from sampling alone when nothing drifted: (bins − 1)·(1/n + 1/m).

    For small shifts PSI ≈ Σ (a − e)² / e, a chi-square statistic over rows; with both
    histograms drawn from one distribution its mean is (bins − 1) per row of either sample.
    A batch of 1,000 rows has a floor of ~0.01 with 10 bins; below ~100 rows PSI says little.
    """
    return (bins - 1) * (1.0 / max(reference_rows, 1) + 1.0 / max(batch_rows, 1))
