"""`python -m eval`: the `adaptlab` command without installing it."""

import sys

from cli.main import main

sys.exit(main(prog="python -m eval"))
