"""Build-only tooling for the models quotegen ships: the corpus, weight steps. Run from the
repository (``python -m modelbuild.corpus``); not part of the installed package."""
