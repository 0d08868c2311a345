"""CLI subcommands, one module each; each exposes ``add_parser(subparsers)`` which registers
itself and sets ``func`` (called with the parsed args, returns an exit code)."""
SUBCOMMANDS = ("solve", "eval", "report", "serve", "view", "sglang-servers")
