"""Shared Rich consoles: results to stdout, errors as one line to stderr.

Off a terminal (CI logs, pipes) Rich would assume 80 columns and cut table cells; a wider fixed
width keeps dataset ids and paths readable there.
"""

import sys

from rich.console import Console

_WIDTH = None if sys.stdout.isatty() else 140

out = Console(width=_WIDTH)
err = Console(stderr=True, width=_WIDTH)
