"""`python -m fraud`: the `fraud` command."""

from fraud.commands.main import main

main()
