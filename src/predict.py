"""`python -m src.predict`: an alias of `fraud predict` (src/fraud/commands/predict.py)."""

from fraud.commands.predict import command

if __name__ == "__main__":
    command()
