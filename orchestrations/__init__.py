"""Orchestrations: deterministic generators that read like the business process (no I/O, clock or randomness).

Each module is one process with its own df.Blueprint `bp`; the plain generator functions stay importable.
"""
