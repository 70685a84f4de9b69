"""`python -m stylekit` (and `torchrun -m stylekit`) entry point."""

from stylekit.cli.app import main

if __name__ == "__main__":
    main()
