"""Local Azure Batch data-plane emulator whose nodes are real SSH servers; the dev account and its well-known
key."""

# The emulator's documented development account and key (published like Azurite's: not a secret).
DEV_ACCOUNT = "devbatchaccount1"
DEV_KEY = "kzPbkR1bSFOC2GsPETplQS4yCIz4lDswDLDg7efKWUiPPTnEEIijHXN4dQ+FJDqlqATPqE1XNdb9nthjJyJaDA=="

__all__ = ["DEV_ACCOUNT", "DEV_KEY"]
