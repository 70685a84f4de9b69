"""Retrieval and classification metrics against hand-computed examples."""

import pytest
import torch
import torch.nn.functional as F

from stylekit.metrics.retrieval import (
    classification_metrics,
    confusion_matrix,
    macro_f1,
    nearest_neighbours,
    per_class_accuracy,
    retrieval_metrics,
    topk_accuracy,
)


def _unit(angles_deg):
    a = torch.tensor(angles_deg, dtype=torch.float64).deg2rad()
    return torch.stack([a.cos(), a.sin()], dim=1)


def test_map_and_recall_hand_computed():
    # query at 0 deg; database sorted by angle: 10 (rel), 20 (irrel), 30 (rel), 80 (rel), 90 (irrel)
    q = _unit([0.0])
    db = _unit([30.0, 10.0, 90.0, 20.0, 80.0])
    ql = torch.tensor([0])
    dl = torch.tensor([0, 0, 1, 1, 0])
    m3 = retrieval_metrics(q, ql, db, dl, k=3)
    # top-3: rel, irrel, rel; R = 3 -> AP@3 = (1/1 + 2/3) / min(3, 3)
    assert m3["map@3"] == pytest.approx((1 + 2 / 3) / 3)
    assert m3["recall@1"] == 1.0
    m5 = retrieval_metrics(q, ql, db, dl, k=5)
    # top-5: rel, irrel, rel, rel, irrel -> (1 + 2/3 + 3/4) / 3
    assert m5["map@5"] == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)


def test_map_uses_min_k_r_and_averages_queries():
    q = _unit([0.0, 90.0])
    ql = torch.tensor([0, 1])
    db = _unit([5.0, 85.0, 45.0])
    dl = torch.tensor([0, 1, 2])
    # each query: its single relevant item first -> AP = 1 (R = 1 < k); recall@1 = 1
    m = retrieval_metrics(q, ql, db, dl, k=10)
    assert m == {"map@10": 1.0, "recall@1": 1.0}
    # swap the labels: the relevant item ranks 3rd for both queries -> AP = (1/3)/1 each
    m2 = retrieval_metrics(q, torch.tensor([1, 0]), db, dl, k=10)
    assert m2["map@10"] == pytest.approx(1 / 3)
    assert m2["recall@1"] == 0.0


def test_leave_one_out_excludes_self():
    e = _unit([0.0, 5.0, 90.0, 95.0])
    labels = torch.tensor([0, 0, 1, 1])
    m = retrieval_metrics(e, labels, k=1)
    assert m == {"map@1": 1.0, "recall@1": 1.0}
    _, idx = nearest_neighbours(e, e, 1, exclude_self=True)
    assert idx.flatten().tolist() == [1, 0, 3, 2]


def test_queries_without_relevant_items_are_left_out():
    q = _unit([0.0, 90.0])
    db = _unit([1.0, 50.0])
    m = retrieval_metrics(q, torch.tensor([0, 7]), db, torch.tensor([0, 1]), k=10)
    assert m["map@10"] == 1.0  # query 2 (class 7) has no relevant item in the database
    assert m["recall@1"] == 0.5


def test_topk_confusion_f1_per_class():
    logits = torch.tensor([[3.0, 2.0, 1.0], [0.0, 1.0, 3.0], [1.0, 3.0, 2.0], [3.0, 1.0, 2.0]])
    labels = torch.tensor([0, 1, 1, 2])
    acc = topk_accuracy(logits, labels, ks=(1, 2, 5))
    assert acc["top1"] == pytest.approx(0.5)  # preds 0, 2, 1, 0
    assert acc["top2"] == pytest.approx(1.0)
    assert acc["top5"] == 1.0  # k capped at the class count
    cm = confusion_matrix(logits.argmax(1), labels, 3)
    assert cm.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 0]]
    assert per_class_accuracy(cm) == [1.0, 0.5, 0.0]
    # F1: class0 P=1/2 R=1 -> 2/3; class1 P=1 R=1/2 -> 2/3; class2 P=0 R=0 -> 0
    assert macro_f1(cm) == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)
    m = classification_metrics(logits, labels, 3)
    assert m["top1"] == pytest.approx(0.5) and m["macro_f1"] == pytest.approx(4 / 9)


def test_absent_class_has_no_accuracy_and_no_f1_term():
    cm = confusion_matrix(torch.tensor([0, 1]), torch.tensor([0, 1]), 3)
    assert per_class_accuracy(cm) == [1.0, 1.0, None]
    assert macro_f1(cm) == 1.0


@pytest.mark.numerics
def test_retrieval_chunking_is_exact():
    g = torch.Generator().manual_seed(0)
    q = F.normalize(torch.randn(50, 6, generator=g), dim=1)
    db = F.normalize(torch.randn(70, 6, generator=g), dim=1)
    s1, i1 = nearest_neighbours(q, db, 5, chunk=7)
    s2, i2 = nearest_neighbours(q, db, 5, chunk=1000)
    assert torch.equal(i1, i2) and torch.allclose(s1, s2)
