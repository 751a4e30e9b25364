"""What every experiment's command line shares: the config folder and the library's
command line (``infocam_jax.train.cli``: flags, config files, errors, exit statuses)."""

from __future__ import annotations

import os

from infocam_jax.train.cli import (EXIT_BAD_INPUT, EXIT_INTERRUPTED,  # noqa: F401
                                   Interrupted, UsageError, define_config_flags,
                                   enable_compilation_cache, load_config_module, main,
                                   open_inputs, validate)

CONFIG_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
