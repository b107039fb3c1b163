"""Verification: one factory (`factory.py`) builds the verifier every front end uses, from settings
and the run's request: the local REPL pool, Ray actors, or LeanDojo."""
