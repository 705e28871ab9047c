"""Subcommands of ``asm-monitor``; each module has ``register(subparsers)``."""
