"""`python -m eval`: the `adaptlab` command without installing it. The command itself lives on
the top floor (cli/, beside the app); this one import up a floor keeps the historic name."""

import sys

from cli.main import main

sys.exit(main(prog="python -m eval"))
