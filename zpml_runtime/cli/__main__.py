"""``python -m zpml_runtime.cli``: the ``zpml`` command."""

import sys

from zpml_runtime.cli.app import main

sys.exit(main())
