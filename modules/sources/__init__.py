"""Thin layers over outside systems and export files; they import nothing of the app."""
