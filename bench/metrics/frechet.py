"""Fréchet distance between Gaussians fitted to feature sums, in float64.

Feature sets are kept as sums (Σx, Σxxᵀ, N): fixed-size, exactly mergeable across shards, and enough to
rebuild mean and covariance. The distance uses the symmetric form
    ‖μ1-μ2‖² + tr Σ1 + tr Σ2 - 2 Σ sqrt(eig(√Σ1 Σ2 √Σ1))
(tfgan's trace_sqrt_product): √Σ1 Σ2 √Σ1 is symmetric PSD, so `eigh` applies and no complex parts appear,
unlike sqrtm(Σ1 Σ2) on the non-symmetric product.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

COV_DENOMINATOR = "N-1"  # unbiased covariance, as tfgan / the TF FVD reference (StyleGAN-V divides by N)


@dataclass
class FeatureSums:
    """Σx (D,), Σxxᵀ (D, D) and N, all float64 / int64 on CPU."""

    sum: torch.Tensor
    outer: torch.Tensor
    count: int

    @classmethod
    def zeros(cls, dim: int) -> "FeatureSums":
        return cls(torch.zeros(dim, dtype=torch.float64), torch.zeros(dim, dim, dtype=torch.float64), 0)

    @classmethod
    def from_features(cls, feats: torch.Tensor) -> "FeatureSums":
        f = _as_features(feats)
        return cls(f.sum(0), f.T @ f, int(f.shape[0]))

    @property
    def dim(self) -> int:
        return int(self.sum.shape[0])

    def mean_cov(self) -> tuple[torch.Tensor, torch.Tensor]:
        return mean_cov_from_sums(self.sum, self.outer, self.count)


def _as_features(feats: torch.Tensor) -> torch.Tensor:
    f = torch.as_tensor(feats).detach().to("cpu", torch.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be (N, D), got {tuple(f.shape)}")
    return f


def mean_cov_from_sums(total: torch.Tensor, outer: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and unbiased covariance (denominator N-1) from Σx and Σxxᵀ, in float64."""
    if n < 2:
        raise ValueError(f"a covariance needs at least 2 feature vectors (got {n})")
    total, outer = total.to(torch.float64), outer.to(torch.float64)
    mu = total / n
    cov = (outer - n * torch.outer(mu, mu)) / (n - 1)
    return mu, (cov + cov.T) / 2  # symmetrise away rounding


def sqrt_psd(mat: torch.Tensor) -> torch.Tensor:
    """Symmetric square root of a symmetric PSD matrix; tiny negative eigenvalues (rounding) clip to 0."""
    vals, vecs = torch.linalg.eigh(mat)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def trace_sqrt_product(cov1: torch.Tensor, cov2: torch.Tensor) -> torch.Tensor:
    """tr sqrt(Σ1 Σ2) computed as Σ sqrt(eig(√Σ1 Σ2 √Σ1)) (same eigenvalues, symmetric matrix)."""
    root1 = sqrt_psd(cov1)
    mid = root1 @ cov2 @ root1
    return torch.linalg.eigvalsh((mid + mid.T) / 2).clamp_min(0).sqrt().sum()


def frechet_distance(mu1: torch.Tensor, cov1: torch.Tensor, mu2: torch.Tensor, cov2: torch.Tensor) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2), float64."""
    mu1, cov1, mu2, cov2 = (t.to("cpu", torch.float64) for t in (mu1, cov1, mu2, cov2))
    if mu1.shape != mu2.shape or cov1.shape != cov2.shape:
        raise ValueError(f"feature dims differ: {tuple(mu1.shape)} vs {tuple(mu2.shape)}")
    diff = mu1 - mu2
    value = diff @ diff + torch.trace(cov1) + torch.trace(cov2) - 2 * trace_sqrt_product(cov1, cov2)
    return float(value)


def frechet_from_sums(a: FeatureSums, b: FeatureSums) -> float:
    return frechet_distance(*a.mean_cov(), *b.mean_cov())
