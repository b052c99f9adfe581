"""Tests of what deploys to Azure: the template, the package, identity-based clients, telemetry."""
