"""``python -m src.cli ...`` runs ``hpo``."""

import sys

from .main import main

sys.exit(main())
