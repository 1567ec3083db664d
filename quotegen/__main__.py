"""`python -m quotegen` runs the CLI."""

from quotegen.cli import main

main()
