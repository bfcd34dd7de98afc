"""`python -m toolforgectl` runs the CLI."""

from toolforgectl.cli.app import main

main()
