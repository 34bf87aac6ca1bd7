"""Peer servers serving the same model, each run in its own virtual environment (see bench.venvs).

Every peer script imports only this package's ``common`` module (standard library, NumPy and Pillow), so it
runs in an environment that has neither the project nor its pins installed.
"""
