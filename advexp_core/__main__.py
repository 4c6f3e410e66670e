"""``python -m advexp_core`` runs the command-line interface."""

import sys

from advexp_core.cli import main

sys.exit(main())
