"""``python -m slt.cli``: the ``slt`` command."""
import sys

from slt.cli.commands import main

sys.exit(main())
