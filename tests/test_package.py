"""The package surface: every advertised name resolves, and importing stays light."""

from __future__ import annotations

import subprocess
import sys

import infocam_jax


def test_every_public_name_resolves():
  for name in infocam_jax.__all__:
    assert getattr(infocam_jax, name) is not None, name


def test_unknown_attribute_is_an_attribute_error():
  try:
    infocam_jax.no_such_name  # pylint: disable=pointless-statement
  except AttributeError as e:
    assert "no_such_name" in str(e)
  else:
    raise AssertionError("expected AttributeError")


def test_import_needs_neither_tensorflow_nor_tfds():
  """`import infocam_jax` (and using the estimators) must not pull in tfds or TF;
  `infocam_jax.data` may import tfds but never TensorFlow."""
  code = (
      "import sys, infocam_jax as ij, jax.numpy as jnp\n"
      "ij.pmi(jnp.zeros((2, 3)), jnp.array([0, 1]))\n"
      "assert 'tensorflow_datasets' not in sys.modules, 'tfds imported'\n"
      "import infocam_jax.data, infocam_jax.models, infocam_jax.train\n"
      "assert 'tensorflow' not in sys.modules, 'tensorflow imported'\n")
  subprocess.run([sys.executable, "-c", code], check=True)
