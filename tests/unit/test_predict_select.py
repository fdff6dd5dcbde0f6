"""Which classes a prediction keeps (pure numpy, no server, no TensorFlow)."""

from __future__ import annotations

import numpy as np
import pytest

from gpdl_backend.errors import UsageError
from gpdl_backend.server.inference import select_classes

PROBS = np.array([[0.2, 0.5, 0.3], [0.6, 0.2, 0.2]])


def test_response_keeps_the_top_class() -> None:
    assert select_classes(PROBS, "response") == [[(1, 0.5, 1)], [(0, 0.6, 1)]]


def test_prob_keeps_every_class_ranked_ties_by_index() -> None:
    assert select_classes(PROBS, "prob") == [
        [(1, 0.5, 1), (2, 0.3, 2), (0, 0.2, 3)],
        [(0, 0.6, 1), (1, 0.2, 2), (2, 0.2, 3)],
    ]


def test_top_k_is_clamped_to_the_classes() -> None:
    assert select_classes(PROBS, "top_k", k=2)[0] == [(1, 0.5, 1), (2, 0.3, 2)]
    assert len(select_classes(PROBS, "top_k", k=10)[0]) == 3


def test_threshold_keeps_ranks_of_all_classes() -> None:
    assert select_classes(PROBS, "threshold", threshold=0.3) == [
        [(1, 0.5, 1), (2, 0.3, 2)], [(0, 0.6, 1)]]
    assert select_classes(PROBS, "threshold", threshold=0.9) == [[], []]


@pytest.mark.parametrize(("pred_type", "k", "threshold"), [
    ("best", None, None), ("top_k", 0, None), ("top_k", None, None), ("threshold", None, None),
])
def test_bad_requests_refused(pred_type: str, k, threshold) -> None:
    with pytest.raises(UsageError):
        select_classes(PROBS, pred_type, k, threshold)
