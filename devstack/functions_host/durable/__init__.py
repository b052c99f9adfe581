"""Durable Functions engine of the local host: runs orchestrations through the real SDK's orchestrator
protocol (schema V2) over an embedded SQLite store, and serves the durable client HTTP API."""
