"""Shared pytest configuration.

* Hypothesis: no deadline (the first call of a jitted function compiles), a
  modest example count (40 per test) so the suite stays fast on 2 cores. The
  inputs are drawn afresh on every run (not derandomized: CI explores new inputs
  each time instead of replaying one fixed set); a failure prints the falsifying
  example and a ``@reproduce_failure(...)`` blob that replays it, and the local
  example database (``.hypothesis/``) replays it first on the next run.
  ``HYPOTHESIS_PROFILE=deterministic`` gives the old fixed inputs (bisecting),
  ``HYPOTHESIS_PROFILE=thorough`` a longer search (500 examples).
* Tests that need several devices run in a subprocess with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (see
  ``tests/multidevice.py``), so the main pytest process keeps one CPU device.
"""

import os

from hypothesis import HealthCheck, settings

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("default", deadline=None, max_examples=40, derandomize=False,
                          print_blob=True, suppress_health_check=_QUIET)
settings.register_profile("deterministic", deadline=None, max_examples=40, derandomize=True,
                          suppress_health_check=_QUIET)
settings.register_profile("thorough", deadline=None, max_examples=500, print_blob=True,
                          suppress_health_check=_QUIET)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
