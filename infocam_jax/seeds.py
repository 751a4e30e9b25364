"""Statistics over seeds: the one rule of every table (mean ± sample std, missing values).

``stat`` summarises one metric over seeds; ``paired_differences`` the per-seed
difference of two methods; ``pm`` formats a summary as ``mean ± std``. The
experiments' tables and summaries (WSOL, PC-softmax, the README tables) all
use these.

Example::

  >>> pm(stat([80.0, 82.0]), 1)
  '81.0 ± 1.4'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["stat", "pm", "paired_differences"]


def stat(values: Sequence[float | None]) -> dict[str, Any]:
  """``{"mean", "std", "per_seed", "missing"}`` over seeds: the one rule of every table.

  ``std`` is the sample standard deviation (ddof=1), None for one value.
  A None among ``values`` (a metric a run could not compute, e.g. the accuracy
  of a class absent from a split) is left out of mean and std and counted in
  ``missing``; mean and std are None when every value is missing.

  >>> stat([1.0, 3.0, None])
  {'mean': 2.0, 'std': 1.4142135623730951, 'per_seed': [1.0, 3.0, None], 'missing': 1}
  """
  per_seed = [None if v is None else float(v) for v in values]
  vals = [v for v in per_seed if v is not None]
  missing = len(per_seed) - len(vals)
  if not vals:
    return {"mean": None, "std": None, "per_seed": per_seed, "missing": missing}
  arr = np.asarray(vals, np.float64)
  std = float(arr.std(ddof=1)) if arr.size > 1 else None
  return {"mean": float(arr.mean()), "std": std, "per_seed": per_seed, "missing": missing}


def pm(s: Mapping[str, Any] | None, digits: int = 2) -> str:
  """``mean ± std`` of a ``stat`` ('-' when missing; '(k missing)' when some are).

  >>> pm(stat([80.0, 82.0, None]), 1)
  '81.0 ± 1.4 (1 missing)'
  """
  if not s or s.get("mean") is None:
    return "-"
  text = (f"{s['mean']:.{digits}f}" if s.get("std") is None
          else f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}")
  if s.get("missing"):
    text += f" ({s['missing']} missing)"
  return text


def paired_differences(values: Sequence[float | None], reference: Sequence[float | None]
                       ) -> dict[str, Any]:
  """``stat`` of the per-seed differences ``values - reference`` (None where either is None).

  >>> paired_differences([3.0, None], [1.0, 2.0])["per_seed"]
  [2.0, None]
  """
  return stat([None if x is None or y is None else x - y for x, y in zip(values, reference)])
