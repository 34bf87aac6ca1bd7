"""Checkpoint importers: one module per foreign format, each converting to this project's layout."""
