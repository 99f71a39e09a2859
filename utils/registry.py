"""Name -> implementation lookup shared by the packages' tables."""

from utils.errors import UserError


def pick(table: dict, name: str, kind: str):
    """Return `table[name]`, or fail with "unknown <kind> 'x'; choose from a, b"."""
    if name not in table:
        raise UserError(f"unknown {kind} '{name}'; choose from {', '.join(sorted(table))}")
    return table[name]
