"""Client walks: the emulator driven by clients this project did not write (@azure/batch, the Azure CLI)."""
