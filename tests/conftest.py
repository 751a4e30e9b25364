"""Shared pytest configuration.

* Hypothesis: no deadline (the first call of a jitted function compiles), a
  modest example count so the suite stays fast on 2 cores; set
  ``HYPOTHESIS_PROFILE=thorough`` for a longer search.
* Tests that need several devices run in a subprocess with
  ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (see
  ``tests/multidevice.py``), so the main pytest process keeps one CPU device.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "default", deadline=None, max_examples=40, derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "thorough", deadline=None, max_examples=500,
    suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
