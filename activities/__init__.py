"""Activities: one function per external effect (Batch, Table storage, events queue), each safe to run twice.

Every module is one concern with its own df.Blueprint `bp`; the plain functions stay importable and callable.
"""
