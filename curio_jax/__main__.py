"""`python -m curio_jax ...` is the `curio-jax` command line."""

import sys

from curio_jax.cli import main

if __name__ == "__main__":
    sys.exit(main())
