"""The add-on's command line, the same wherever Blender runs:

    blender -c flame demo --output out/demo                  # an installed extension registers "flame"
    python scripts/flame_cli.py demo --output out/demo       # the bpy wheel, from a source checkout

:func:`main` parses the arguments (:mod:`.parsing`), runs the subcommand (:mod:`.commands`) and turns
every failure into one line on stderr (:mod:`.console`). Nothing here is imported at registration
beyond this file.
"""

from __future__ import annotations

import traceback

COMMAND = "flame"  # blender -c flame ...


def main(argv: list[str], prog: str = f"blender -c {COMMAND}") -> int:
    """Run one subcommand; returns the exit code (0, 1 for errors, 2 for bad arguments, 130 on Ctrl-C)."""
    from ..core.errors import FlameError
    from .console import CliError, Console
    from .parsing import parser

    try:
        args = parser(prog).parse_args(argv)
    except SystemExit as done:  # --help, or a bad argument (argparse printed why)
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 2
    console = Console(prog, args.verbose)
    keep_log = False
    try:
        args.func(args, console)
        return 0
    except CliError as err:
        console.error(f"{args.command}: {err}")
    except KeyboardInterrupt as err:  # a command that had written something says what (batch)
        console.error(f"{args.command}: {str(err) or 'interrupted; nothing was written'}")
        return 130
    except Exception as err:  # FlameError and OSError carry a message for the user; anything else is a bug
        if isinstance(err, (FlameError, OSError)):
            console.error(f"{args.command}: {err}")
        else:
            traceback.print_exc()  # into the log (or the terminal with --verbose)
            keep_log = console.log_path is not None
            console.error(f"{args.command}: unexpected {type(err).__name__}: {err}"
                          + (f" (details in {console.log_path})" if keep_log else ""))
    finally:
        console.close(keep_log)
    return 1
