"""The local dev stack: Azurite, the Azure Batch emulator and the Functions host. Never deployed."""
