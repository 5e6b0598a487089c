"""`python -m src.summary`: an alias of `fraud summary` (src/fraud/commands/summary.py)."""

from fraud.commands.summary import command

if __name__ == "__main__":
    command()
