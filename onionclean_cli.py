"""The ``onionclean`` command: the one place that wires core, capsule and mailgw together.

STUB: subcommands are added by the core (clean, inspect), capsule, mailgw and serve work.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("onionclean: not yet implemented", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
