"""``python -m infocam_jax.wsol``: the ``infocam-wsol-eval`` command line (:mod:`infocam_jax.wsol.cli`)."""

import sys

from infocam_jax.wsol.cli import main

sys.exit(main())
