"""``python -m searchkit``: the ``searchkit`` command."""
import sys

from searchkit.cli import main

if __name__ == "__main__":  # not when a spawned worker process imports this module
    sys.exit(main())
