"""The `stylekit` Typer application: discovers every command module in stylekit/cli/.

Each command family lives in its own module with `register(app)` and an `ORDER` number that sets
its place in `stylekit --help`. Modules import only typer/stdlib at top level so start-up stays fast.
"""

import importlib
import pkgutil

import typer

import stylekit
import stylekit.cli as cli_package
from stylekit.host_memory import keep_freed_host_memory

_NOT_COMMANDS = {"app", "common"}

app = typer.Typer(
    name="stylekit",
    help="Study and make image style: data, classifiers, style metrics, pix2pix, StyleGAN2 and StyleGAN3, inversion, neural style transfer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"stylekit {stylekit.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version and exit."),
) -> None:
    """Study and make image style."""


def _register_all() -> None:
    modules = []
    for info in pkgutil.iter_modules(cli_package.__path__):
        if info.name in _NOT_COMMANDS or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"stylekit.cli.{info.name}")
        if hasattr(module, "register"):
            modules.append(module)
    for module in sorted(modules, key=lambda m: (getattr(m, "ORDER", 100), m.__name__)):
        module.register(app)


_register_all()


def main() -> None:
    keep_freed_host_memory()  # before any tensor: CPU runs reuse freed memory (host_memory.py)
    app()
