"""`python -m src.sweep`: an alias of `fraud sweep` (src/fraud/commands/sweep.py)."""

from fraud.commands.sweep import command

if __name__ == "__main__":
    command()
