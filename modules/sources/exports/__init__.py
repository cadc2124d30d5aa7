"""Parsers for the export files people upload. Each streams: memory stays flat however large the file."""
