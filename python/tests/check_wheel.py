"""Checks that the newest wheel in a directory ships the package whole:
the native module, the SQLite extension, the stubs and py.typed."""

from __future__ import annotations

import pathlib
import sys
import zipfile


def main(directory: str) -> int:
    wheels = sorted(pathlib.Path(directory).glob("honker-*.whl"), key=lambda p: p.stat().st_mtime)
    if not wheels:
        print(f"no honker wheel in {directory}", file=sys.stderr)
        return 1
    names = set(zipfile.ZipFile(wheels[-1]).namelist())
    wanted = ["honker/__init__.py", "honker/_honker.pyi", "honker/py.typed"]
    missing = [n for n in wanted if n not in names]
    if not any(n.startswith("honker/_honker.") and n.endswith((".so", ".pyd")) for n in names):
        missing.append("honker/_honker native module")
    if not any(n.startswith("honker/libhonker_ext.") or n == "honker/honker_ext.dll" for n in names):
        missing.append("honker/libhonker_ext (the SQLite extension)")
    if missing:
        print(f"{wheels[-1].name} lacks: {', '.join(missing)}", file=sys.stderr)
        return 1
    print(f"{wheels[-1].name}: native module, extension, stubs and py.typed present")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
