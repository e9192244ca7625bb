"""`python -m mlpipeline_operator` is the `mlpipeline` command."""

import sys

from mlpipeline_operator.cli import main

sys.exit(main())
