"""The provisioning domain: request validation, image policy, node states, records and settings.

Everything except `clients` and `storage` is pure Python that knows nothing of Functions or Azure.
"""
