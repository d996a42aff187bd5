"""`python -m modernconv` runs the command line (also used under torchrun)."""
import sys

from .cli import main

sys.exit(main())
