"""``python -m pipelines`` is the same as the ``fairness-audit`` command."""

import sys

from pipelines.cli import main

sys.exit(main())
