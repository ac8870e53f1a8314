"""Lets `python -m cnncli` run the command-line interface."""

from cnncli.cli import cli

if __name__ == "__main__":
    cli()
