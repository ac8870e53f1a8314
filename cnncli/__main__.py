"""Lets `python -m cnncli` run the command-line interface, and is the console script."""

import sys


def run() -> None:
    """``cli.main``, imported under a guard: Ctrl-C while click and rich load (the first quarter
    second) ends in the one line and status every command gives, not an import traceback."""
    try:
        from cnncli.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted by SIGINT\n")
        sys.exit(130)
    main()


if __name__ == "__main__":
    run()
