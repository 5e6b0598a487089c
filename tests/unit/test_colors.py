"""Model colours stay told apart: every pair far apart in CIEDE2000, in normal vision and as
people with each common colour-vision deficiency see them (Machado et al. 2009, full
severity), and every colour from the Okabe-Ito palette, designed for those readers.

Issue 31: weighted's orange and gbdt's vermillion were 22 apart (12.5 for a deuteranope).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from fraud.evaluation.colors import MODEL_COLORS

OKABE_ITO = {"#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00",
             "#CC79A7"}
# Machado, Oliveira & Fernandes (2009), severity 1, on linear RGB.
DEFICIENCIES = {
    "normal": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}
# Closest pair allowed: ~10 is "clearly different" for thin lines and small markers.
MIN_DISTANCE = {"normal": 30.0, "protanopia": 10.0, "deuteranopia": 10.0, "tritanopia": 10.0}
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])


def _linear_rgb(hex_color: str) -> np.ndarray:
    rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)]) / 255
    return np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def _lab(linear_rgb: np.ndarray) -> tuple[float, float, float]:
    """CIELAB (D65) of a linear-RGB colour."""
    xyz = SRGB_TO_XYZ @ np.clip(linear_rgb, 0, 1) / (SRGB_TO_XYZ @ np.ones(3))
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


def ciede2000(lab1: tuple[float, float, float], lab2: tuple[float, float, float]) -> float:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005)."""
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    c_mean = (math.hypot(a1, b1) + math.hypot(a2, b2)) / 2
    g = 0.5 * (1 - math.sqrt(c_mean**7 / (c_mean**7 + 25**7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = math.hypot(a1, b1), math.hypot(a2, b2)
    h1, h2 = (math.degrees(math.atan2(b, a)) % 360 for a, b in ((a1, b1), (a2, b2)))
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    dh_big = 2 * math.sqrt(c1 * c2) * math.sin(math.radians(dh / 2))
    l_mean, c_mean = (l1 + l2) / 2, (c1 + c2) / 2
    if c1 * c2 == 0:
        h_mean = h1 + h2
    elif abs(h1 - h2) <= 180:
        h_mean = (h1 + h2) / 2
    else:
        h_mean = (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2
    t = (1 - 0.17 * math.cos(math.radians(h_mean - 30)) + 0.24 * math.cos(math.radians(2 * h_mean))
         + 0.32 * math.cos(math.radians(3 * h_mean + 6))
         - 0.20 * math.cos(math.radians(4 * h_mean - 63)))
    rotation = (-2 * math.sqrt(c_mean**7 / (c_mean**7 + 25**7))
                * math.sin(math.radians(60 * math.exp(-(((h_mean - 275) / 25) ** 2)))))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / math.sqrt(20 + (l_mean - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_mean, 1 + 0.015 * c_mean * t
    dl, dc, dh_term = (l2 - l1) / s_l, (c2 - c1) / s_c, dh_big / s_h
    return math.sqrt(dl**2 + dc**2 + dh_term**2 + rotation * dc * dh_term)


def closest_pair(colors: dict[str, str], seen_as: np.ndarray) -> tuple[float, str, str]:
    labs = {name: _lab(seen_as @ _linear_rgb(value)) for name, value in colors.items()}
    return min((ciede2000(labs[a], labs[b]), a, b) for a, b in itertools.combinations(labs, 2))


def test_ciede2000_matches_the_published_test_data() -> None:
    # Sharma, Wu & Dalal (2005), pairs 1, 7 and 17.
    assert round(ciede2000((50, 2.6772, -79.7751), (50, 0, -82.7485)), 4) == 2.0425
    assert round(ciede2000((50, 0, 0), (50, -1, 2)), 4) == 2.3669
    assert round(ciede2000((50, 2.5, 0), (73, 25, -18)), 4) == 27.1492


def test_model_colours_are_okabe_ito() -> None:
    assert {value.upper() for value in MODEL_COLORS.values()} <= OKABE_ITO


def test_every_pair_of_model_colours_is_told_apart() -> None:
    for vision, matrix in DEFICIENCIES.items():
        distance, first, second = closest_pair(MODEL_COLORS, matrix)
        assert distance >= MIN_DISTANCE[vision], (vision, first, second, round(distance, 1))


def test_the_old_orange_and_vermillion_would_fail() -> None:
    old = dict(MODEL_COLORS, weighted="#E69F00", gbdt="#D55E00")
    distance, *pair = closest_pair(old, DEFICIENCIES["normal"])
    assert distance < MIN_DISTANCE["normal"] and set(pair) == {"weighted", "gbdt"}
