"""``asm-monitor``: :mod:`pipeline.cli.main` builds the parser; every other module is one
subcommand group with ``register(subparsers)``."""
