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


def neighbour_count(k: int, n: int, exclude: torch.Tensor | None) -> int:
    """How many neighbours `nearest_neighbours` returns per query: k, at most the n database rows, less
    one when any query has a row excluded."""
    return max(0, min(k, n - (1 if exclude is not None and bool((exclude >= 0).any()) else 0)))


def nearest_neighbours(
    queries: torch.Tensor, database: torch.Tensor, k: int, exclude_self: bool = False, chunk: int = 1024,
    db_chunk: int = 65536, exclude: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact top-k cosine neighbours (scores, indices) of each query in the database (rows L2-normalised).

    One matmul per [chunk queries x db_chunk database rows] block, merged into a running top-k, so
    memory is the database plus one chunk x db_chunk float32 block (256 MiB at the defaults) whatever
    the collection size. `exclude_self`: queries and database are the same set and a query never
    retrieves itself; `exclude`: [Q] database index each query must not retrieve (-1 = none).
    Runs on the database's device.
    """
    device = database.device
    n = database.shape[0]
    if exclude_self:
        exclude = torch.arange(queries.shape[0], device=device)
    has_exclusions = exclude is not None and bool((exclude >= 0).any())
    k = neighbour_count(k, n, exclude)
    db = database.float()
    scores, indices = [], []
    for start in range(0, queries.shape[0], chunk):
        q = queries[start : start + chunk].to(device, torch.float32)
        best_s = torch.empty(q.shape[0], 0, device=device)
        best_i = torch.empty(q.shape[0], 0, dtype=torch.long, device=device)
        for db_start in range(0, n, db_chunk):
            sim = q @ db[db_start : db_start + db_chunk].T
            if has_exclusions:
                assert exclude is not None
                ex = exclude[start : start + chunk].to(device) - db_start
                rows = torch.nonzero((ex >= 0) & (ex < sim.shape[1])).flatten()
                sim[rows, ex[rows]] = float("-inf")
            s, i = sim.topk(min(k, sim.shape[1]), dim=1)
            merged_s, order = torch.cat([best_s, s], dim=1).topk(min(k, best_s.shape[1] + s.shape[1]), dim=1)
            best_i = torch.cat([best_i, i + db_start], dim=1).gather(1, order)
            best_s = merged_s
        scores.append(best_s)
        indices.append(best_i)
    if not scores:
        return torch.zeros(0, k, device=device), torch.zeros(0, k, dtype=torch.long, device=device)
    return torch.cat(scores), torch.cat(indices)


def neighbour_metrics(
    neighbour_idx: torch.Tensor, query_labels: torch.Tensor, db_labels: torch.Tensor, k: int,
    exclude: torch.Tensor | None = None,
) -> dict[str, float]:
    """{'map@k', 'recall@1'} of neighbour lists (from `nearest_neighbours`); `exclude` as given to it.

    The one place AP@k is computed: train-classifier's retrieval metrics and `stylekit similar` both
    call it, so they report the same numbers for the same neighbours.
    """
    if neighbour_idx.shape[0] == 0 or neighbour_idx.shape[1] == 0:
        return {f"map@{k}": 0.0, "recall@1": 0.0}
    neighbour_idx, query_labels, db_labels = neighbour_idx.cpu(), query_labels.cpu(), db_labels.cpu()
    rel = (db_labels[neighbour_idx] == query_labels[:, None]).double()  # [Q, k']
    total = (db_labels[None, :] == query_labels[:, None]).sum(1).double()
    if exclude is not None:
        exclude = exclude.cpu()
        hit = exclude >= 0
        total[hit] -= (db_labels[exclude[hit]] == query_labels[hit]).double()
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float64, device="cpu")  # metrics are computed on the CPU
    precision_at_i = rel.cumsum(1) / ranks
    denom = total.clamp(max=k)
    valid = denom > 0
    ap = (precision_at_i * rel).sum(1)[valid] / denom[valid]
    return {f"map@{k}": float(ap.mean()) if valid.any() else 0.0, "recall@1": float(rel[:, 0].mean())}


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
    exclude = torch.arange(query_emb.shape[0], device=query_emb.device) if exclude_self else None
    _, idx = nearest_neighbours(query_emb, db_emb, k, exclude=exclude)
    return neighbour_metrics(idx, query_labels, db_labels, k, exclude)


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, object]:
    """top-1/top-5, macro-F1, confusion matrix and per-class accuracy for one split."""
    pred = logits.argmax(1)
    cm = confusion_matrix(pred, labels, num_classes)
    out: dict[str, object] = dict(topk_accuracy(logits, labels))
    out["macro_f1"] = macro_f1(cm)
    out["confusion"] = cm
    out["per_class_accuracy"] = per_class_accuracy(cm)
    return out
