"""``python -m twintricks_cli`` runs the ``twintricks`` command line."""

import sys

from twintricks_cli import main

sys.exit(main())
