"""Lets `python -m cnncli` run the command-line interface."""

from cnncli.cli import main

if __name__ == "__main__":
    main()
