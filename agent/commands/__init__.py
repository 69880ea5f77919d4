"""The ``routekit`` subcommands beyond ``run`` (one module per command group).

Each module exposes one click command or group; ``agent/cli.py`` registers them. Shared plumbing
(exit codes, opening the store, the CLI's local user, error mapping) lives in ``_common``.
"""
