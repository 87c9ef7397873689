"""``python -m src.cli ...`` runs ``hpo``."""

from .main import run

run()
