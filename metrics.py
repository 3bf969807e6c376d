"""The numbers that say how good a set of images is, from their features in a classifier: FID, the Inception Score,
class coverage, and precision and recall (overall and per class). Pure arithmetic on tensors; evaluate.py says
which classifier and which real images they are measured against.

    score(fake_features, fake_probabilities, real_features)    # a flat dict of numbers
"""

from __future__ import annotations

import math

import torch

K = 3  # neighbours for precision and recall, as in Kynkaanniemi et al. 2019


def _sqrt_psd(matrix: torch.Tensor) -> torch.Tensor:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition (tiny negative eigenvalues: 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(feats_a: torch.Tensor, feats_b: torch.Tensor) -> float:
    """||mu_a - mu_b||^2 + tr(C_a) + tr(C_b) - 2 tr((C_a^1/2 C_b C_a^1/2)^1/2) for features (N, D) and (M, D)."""
    a, b = feats_a.cpu().double(), feats_b.cpu().double()  # float64: the trace terms nearly cancel
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)  # (D, D)
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a  # symmetric, with the eigenvalues of C_a C_b, so its root's trace is the term
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    fid = (mu_a - mu_b).square().sum() + cov_a.trace() + cov_b.trace() - 2 * trace_root
    return max(0.0, float(fid))  # not below 0 by rounding


def inception_score(probs: torch.Tensor) -> float:
    """exp(mean KL(p(y|x) || p(y))) over class probabilities (N, classes): 1 at worst, the number of classes at best."""
    probs = probs.double().clamp(min=1e-12)
    marginal = probs.mean(0, keepdim=True)
    return float((probs * (probs.log() - marginal.log())).sum(1).mean().exp())


def class_coverage(probs: torch.Tensor) -> tuple[list[float], float]:
    """Share of each predicted class (summing to 1) and their entropy / log(classes) (1.0: uniform, 0.0: one class)."""
    counts = torch.bincount(probs.argmax(1), minlength=probs.size(1)).double()
    shares = counts / counts.sum()
    nonzero = shares[shares > 0]
    entropy = float(-(nonzero * nonzero.log()).sum() / math.log(probs.size(1)))
    return shares.tolist(), max(0.0, entropy)


def _knn_radii(feats: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    """Distance from each point (N, D) to its k-th nearest other point: (N,)."""
    radii = [torch.cdist(feats[i:i + chunk], feats).topk(k + 1, dim=1, largest=False).values[:, -1]  # (chunk,)
             for i in range(0, len(feats), chunk)]  # k + 1: the nearest point is the point itself
    return torch.cat(radii)


def _share_inside(points: torch.Tensor, centres: torch.Tensor, radii: torch.Tensor, chunk: int) -> float:
    """Share of points (N, D) within radii[j] of at least one centre j (M, D)."""
    inside = sum(int((torch.cdist(points[i:i + chunk], centres) <= radii).any(1).sum())  # (chunk, M) -> count
                 for i in range(0, len(points), chunk))
    return inside / len(points)


def precision_recall(real_feats: torch.Tensor, fake_feats: torch.Tensor, k: int = K,
                     chunk: int = 1000) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019): each set's manifold is the union of balls reaching
    from every point to its k-th nearest neighbour; precision is the share of fakes on the real manifold, recall the
    share of reals on the fake one. Distances are computed `chunk` rows at a time to bound memory."""
    if min(len(real_feats), len(fake_feats)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} points in each set")
    real, fake = real_feats.float(), fake_feats.float()
    precision = _share_inside(fake, real, _knn_radii(real, k, chunk), chunk)
    recall = _share_inside(real, fake, _knn_radii(fake, k, chunk), chunk)
    return precision, recall


def score(fake_feats: torch.Tensor, fake_probs: torch.Tensor, real_feats: torch.Tensor, k: int = K,
          fake_labels: torch.Tensor | None = None, real_labels: torch.Tensor | None = None) -> dict:
    """All metrics of one set of samples against reference features, as a flat dict of numbers.

    FID uses every reference image; precision and recall use a fixed random subset of the reference as large as the
    sample set (the paper compares equal numbers), so they mean the same at any n. With the labels of both sets,
    precision and recall also per class: each class's samples against the reference images of that class.
    """
    n = len(fake_feats)
    subset = torch.randperm(len(real_feats), generator=torch.Generator().manual_seed(0))[:n]
    precision, recall = precision_recall(real_feats[subset], fake_feats, k=k)
    shares, entropy = class_coverage(fake_probs)
    scores = {"n": n, "fid": frechet_distance(fake_feats, real_feats), "inception_score": inception_score(fake_probs),
              "coverage_entropy": entropy, "precision": precision, "recall": recall,
              **{f"share_{c}": share for c, share in enumerate(shares)}}
    if fake_labels is not None and real_labels is not None:
        reals, subset_labels = real_feats[subset], real_labels[subset]
        per_class = [precision_recall(reals[subset_labels == c], fake_feats[fake_labels == c], k=k)
                     if min(int((subset_labels == c).sum()), int((fake_labels == c).sum())) > k else (math.nan,) * 2
                     for c in range(fake_probs.size(1))]
        scores["precision_per_class"], scores["recall_per_class"] = [p for p, _ in per_class], [r for _, r in per_class]
    return scores
