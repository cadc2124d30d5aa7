"""Sillon's application code."""

VERSION = "0.1.0"
