"""Classification and style-retrieval metrics.

Retrieval (as in CSD's WikiArt evaluation): queries are the val (or test) images, the database is
the train images, and a database image is relevant to a query when it has the same style. Similarity
is the cosine of L2-normalised embeddings.

- Recall@1: fraction of queries whose nearest database image has the query's style.
- AP@k for one query: sum_{i<=k} precision@i * rel_i / min(k, R), where R is the number of relevant
  images in the whole database (so a perfect top-k scores 1 even when R < k; a query with R = 0 is
  left out). mAP@k is the mean over queries.
- macro-F1: the unweighted mean over classes of 2PR/(P+R) (a class never predicted and never
  present is left out; one present but never predicted scores 0).
"""

from __future__ import annotations

import torch


def topk_accuracy(logits: torch.Tensor, labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """{'top1': .., 'top5': ..}; k is capped at the class count."""
    out = {}
    n, c = logits.shape
    for k in ks:
        kk = min(k, c)
        top = logits.topk(kk, dim=1).indices
        hit = (top == labels[:, None]).any(dim=1).float()
        out[f"top{k}"] = float(hit.mean()) if n else 0.0
    return out


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """[C, C] counts; rows = true class, columns = predicted class."""
    idx = labels.long() * num_classes + pred.long()
    return torch.bincount(idx, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(cm: torch.Tensor) -> list[float | None]:
    """Recall of each class (diagonal / row sum); None for a class with no samples."""
    totals = cm.sum(1)
    return [float(cm[i, i] / totals[i]) if totals[i] > 0 else None for i in range(cm.shape[0])]


def macro_f1(cm: torch.Tensor) -> float:
    tp = cm.diag().double()
    predicted = cm.sum(0).double()
    actual = cm.sum(1).double()
    scores = []
    for i in range(cm.shape[0]):
        if predicted[i] == 0 and actual[i] == 0:
            continue
        precision = tp[i] / predicted[i] if predicted[i] > 0 else torch.tensor(0.0, dtype=torch.float64, device=cm.device)
        recall = tp[i] / actual[i] if actual[i] > 0 else torch.tensor(0.0, dtype=torch.float64, device=cm.device)
        scores.append(0.0 if precision + recall == 0 else float(2 * precision * recall / (precision + recall)))
    return sum(scores) / len(scores) if scores else 0.0


def nearest_neighbours(
    queries: torch.Tensor, database: torch.Tensor, k: int, exclude_self: bool = False, chunk: int = 1024
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k cosine neighbours (scores, indices) of each query in the database, chunked over queries.

    `exclude_self`: queries and database are the same set; a query never retrieves itself.
    """
    k = min(k, database.shape[0] - (1 if exclude_self else 0))
    scores, indices = [], []
    db = database.float()
    for start in range(0, queries.shape[0], chunk):
        sim = queries[start : start + chunk].float() @ db.T
        if exclude_self:
            rows = torch.arange(sim.shape[0], device=sim.device)
            sim[rows, rows + start] = float("-inf")
        s, i = sim.topk(k, dim=1)
        scores.append(s)
        indices.append(i)
    return torch.cat(scores), torch.cat(indices)


def retrieval_metrics(
    query_emb: torch.Tensor,
    query_labels: torch.Tensor,
    db_emb: torch.Tensor | None = None,
    db_labels: torch.Tensor | None = None,
    k: int = 10,
) -> dict[str, float]:
    """{'map@k': .., 'recall@1': ..}. Without a database: leave-one-out within the queries."""
    exclude_self = db_emb is None
    if db_emb is None or db_labels is None:
        db_emb, db_labels = query_emb, query_labels
    if query_emb.shape[0] == 0 or db_emb.shape[0] <= (1 if exclude_self else 0):
        return {f"map@{k}": 0.0, "recall@1": 0.0}
    _, idx = nearest_neighbours(query_emb, db_emb, k, exclude_self)
    rel = (db_labels[idx] == query_labels[:, None]).double()  # [Q, k']
    classes, counts = torch.unique(db_labels, return_counts=True)
    total = torch.zeros(query_labels.shape[0], dtype=torch.float64, device=query_labels.device)
    for c, n in zip(classes.tolist(), counts.tolist(), strict=True):
        total[query_labels == c] = n - (1 if exclude_self else 0)
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float64, device=rel.device)
    precision_at_i = rel.cumsum(1) / ranks
    denom = total.clamp(max=k)
    valid = denom > 0
    ap = (precision_at_i * rel).sum(1)[valid] / denom[valid]
    return {f"map@{k}": float(ap.mean()) if valid.any() else 0.0, "recall@1": float(rel[:, 0].mean())}


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, object]:
    """top-1/top-5, macro-F1, confusion matrix and per-class accuracy for one split."""
    pred = logits.argmax(1)
    cm = confusion_matrix(pred, labels, num_classes)
    out: dict[str, object] = dict(topk_accuracy(logits, labels))
    out["macro_f1"] = macro_f1(cm)
    out["confusion"] = cm
    out["per_class_accuracy"] = per_class_accuracy(cm)
    return out
