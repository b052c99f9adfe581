"""Tests of the local Functions host, run through its CLI against small apps under apps/."""
