"""Puts the project root on sys.path so tests import `ops`, `archs` and `tools` as a user would."""
