"""The Typer command-line interface: one module per command family, discovered by app.py."""
