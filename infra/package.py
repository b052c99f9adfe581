"""Build the deployment zip exactly as a deployment uploads it: every file under the app root that
.funcignore (gitignore syntax) does not exclude, with paths relative to the root.

`make package` runs it; `python infra/package.py --list` prints the file list without writing a zip.
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path

import pathspec

ROOT = Path(__file__).resolve().parent.parent
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same tree gives the same zip


def ignore_spec(root: Path) -> pathspec.GitIgnoreSpec:
    """The root's .funcignore as a gitignore matcher (an empty one when the file is missing)."""
    path = root / ".funcignore"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return pathspec.GitIgnoreSpec.from_lines(lines)


def package_files(root: Path = ROOT) -> list[str]:
    """The relative POSIX paths of every file a deployment of `root` uploads, sorted."""
    spec = ignore_spec(root)
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        # An excluded directory is not entered (gitignore: nothing below it can be re-included).
        dirnames[:] = sorted(d for d in dirnames if not spec.match_file(f"{prefix}{d}/"))
        for name in filenames:
            rel = prefix + name
            if not spec.match_file(rel) and not (Path(dirpath) / name).is_symlink():
                found.append(rel)
    return sorted(found)


def build_package(output: Path, root: Path = ROOT) -> list[str]:
    """Write the deployment zip to `output`; returns the paths it holds."""
    files = package_files(root)
    output.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for rel in files:
            info = zipfile.ZipInfo(rel, date_time=ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, (root / rel).read_bytes())
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=ROOT / "dist" / "app.zip")
    parser.add_argument("--root", type=Path, default=ROOT)
    parser.add_argument("--list", action="store_true", help="print the files instead of writing the zip")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(package_files(args.root)))
        return 0
    files = build_package(args.output, args.root)
    print(f"{args.output}: {len(files)} files, {args.output.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
