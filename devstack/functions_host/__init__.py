"""Local Azure Functions host for the Python v2 programming model: runs a real function_app.py with its
HTTP, queue, timer and durable triggers on loopback, with no .NET host and no Azure."""
