"""``infocam_jax.io``: the JSON writer shared by the training loop and the experiments."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from infocam_jax import io as _io


def test_write_json_converts_numpy_and_replaces_atomically(tmp_path):
  path = tmp_path / "sub" / "out.json"  # the directory is created
  obj = {"i": np.int64(3), "f": np.float32(0.5), "nan": np.float32("nan"), "a": np.arange(3),
         "nested": [{"x": np.float64(1.25)}]}
  _io.write_json(path, obj)
  assert json.loads(path.read_text()) == {"i": 3, "f": 0.5, "nan": None, "a": [0, 1, 2],
                                          "nested": [{"x": 1.25}]}
  assert [p.name for p in path.parent.iterdir()] == ["out.json"]  # no temporary file left
  _io.write_json(path, {"b": 1}, sort_keys=True)
  assert json.loads(path.read_text()) == {"b": 1}


def test_write_json_refuses_nan_and_unknown_types(tmp_path):
  for nan in (math.nan, np.float64("nan")):  # float64 is a Python float: no conversion
    with pytest.raises(ValueError):
      _io.write_json(tmp_path / "x.json", {"v": nan})  # NaN is not JSON
  with pytest.raises(TypeError, match="not JSON serialisable: object"):
    _io.write_json(tmp_path / "y.json", {"v": object()})
