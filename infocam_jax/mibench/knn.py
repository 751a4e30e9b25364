"""The kNN estimator of I(X;Y) for a discrete label Y and a continuous vector X (nats).

Ross (2014, PLoS ONE 9:e87357), the discrete-continuous case of the mixed KSG estimator of
Gao, Kannan, Oh & Viswanath (2017):

    I = psi(N) + <psi(k_i)> - <psi(N_{y_i})> - <psi(m_i)>,

where, for point i, ``d_i`` is the Euclidean distance to its k-th nearest neighbour among
the points of its own class (``k_i = min(k, N_{y_i} - 1)``), and ``m_i`` counts the points
of the *whole* sample within ``d_i`` of x_i (the k-th neighbour included, i itself
excluded). Points whose class occurs once are dropped (as scikit-learn does).
Neighbours are exact (chunked brute-force distances in float64, no trees, no
approximation); :func:`ross_mi_reference` is the plain O(N^2) loop the tests compare with.

Example::

    est, stderr = ross_mi(x, y, k=3)        # x [n, d] float, y [n] int
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma


def _check(x, y, k):
  x = np.asarray(x, np.float64)
  y = np.asarray(y)
  if x.ndim != 2:
    raise ValueError(f"`x` must be [n, d], got shape {x.shape}.")
  if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
    raise ValueError(f"`y` must be [n] = [{x.shape[0]}] integer labels, got shape {y.shape} "
                     f"dtype {y.dtype}.")
  if int(k) != k or k < 1:
    raise ValueError(f"`k` must be a positive integer, got {k!r}.")
  _, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
  keep = counts[inverse] > 1
  if keep.sum() < 2:
    raise ValueError("need at least one class with two or more samples.")
  return x[keep], inverse[keep], int(k)


def ross_mi(x, y, k: int = 3, *, chunk_size: int = 512) -> tuple[float, float]:
  """(estimate, stderr) in nats; stderr is std(per-point terms)/sqrt(N) (terms are weakly
  dependent, so it is an approximation)."""
  x, y, k = _check(x, y, k)
  n = x.shape[0]
  counts = np.bincount(y)
  n_y = counts[y]
  k_i = np.minimum(k, n_y - 1)
  sq = np.sum(x * x, 1)
  m = np.empty(n, np.int64)
  for start in range(0, n, chunk_size):
    rows = slice(start, min(start + chunk_size, n))
    d2 = sq[rows, None] + sq[None, :] - 2.0 * (x[rows] @ x.T)
    dist = np.sqrt(np.maximum(d2, 0.0))
    idx = np.arange(rows.start, rows.stop)
    dist[idx - start, idx] = np.inf  # never count i itself
    same = np.where(y[None, :] == y[rows, None], dist, np.inf)
    kk = min(k, same.shape[1])
    nearest = np.sort(np.partition(same, kk - 1, axis=1)[:, :kk], axis=1)
    radius = nearest[np.arange(len(idx)), k_i[rows] - 1]
    m[rows] = np.sum(dist <= radius[:, None], axis=1)
  terms = digamma(n) + digamma(k_i) - digamma(n_y) - digamma(m)
  return float(terms.mean()), float(terms.std(ddof=1) / np.sqrt(n))


def ross_mi_reference(x, y, k: int = 3) -> float:
  """The same estimator as a direct double loop (for tests; O(N^2) Python)."""
  x, y, k = _check(x, y, k)
  n = x.shape[0]
  total = 0.0
  for i in range(n):
    dist = [float(np.sqrt(np.sum((x[i] - x[j]) ** 2))) for j in range(n)]
    same = sorted(dist[j] for j in range(n) if j != i and y[j] == y[i])
    k_i = min(k, len(same))
    radius = same[k_i - 1]
    m_i = sum(1 for j in range(n) if j != i and dist[j] <= radius)
    total += digamma(n) + digamma(k_i) - digamma(len(same) + 1) - digamma(m_i)
  return total / n
