"""``python -m repgap``: the ``repgap`` command."""
import sys

from .cli import main

sys.exit(main())
