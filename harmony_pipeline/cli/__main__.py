"""`python -m harmony_pipeline.cli …`: the same as the `harmony` command."""

import sys

from harmony_pipeline.cli.main import main

sys.exit(main())
