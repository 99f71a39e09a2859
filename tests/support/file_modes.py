"""The permission bits of files and folders, by path."""

import stat


def modes(paths) -> dict:
    return {str(path): stat.S_IMODE(path.stat().st_mode) for path in paths}
