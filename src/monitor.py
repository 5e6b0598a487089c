"""`python -m src.monitor`: an alias of `fraud monitor` (src/fraud/commands/monitor.py)."""

from fraud.commands.monitor import command

if __name__ == "__main__":
    command()
