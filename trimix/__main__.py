"""`python -m trimix` runs the command line."""

from trimix.cli import main

main()
