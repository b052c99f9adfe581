"""batch-ssh: the command-line client of the Batch SSH access app (request a pool, grant, extend, rotate and
revoke access, write an SSH config, log in), over the app's HTTP API with its function key."""

__version__ = "0.1.0"
