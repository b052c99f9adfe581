"""`python -m batch_ssh_cli`: the same as the `batch-ssh` console script."""

import sys

from batch_ssh_cli.main import main

sys.exit(main())
