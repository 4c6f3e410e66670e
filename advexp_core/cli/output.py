"""Output folders that never lose a user's file: ``--out DIR`` and ``--into-existing``.

A run writes its files into a hidden folder inside ``DIR`` first and moves them in only when it
succeeded, so a failed run leaves ``DIR`` as it was. ``DIR`` may be new, empty, or hold only what an
earlier advexp run wrote there (listed in ``.advexp-run.json``, which is how a rerun knows which files
are its own to replace). A folder holding anything else (the run's inputs, the user's notes) is
refused unless ``--into-existing`` is given, and then only the run's own files are added: a file of
the same name that advexp did not write is never replaced. Nothing outside ``DIR`` is touched, and
``DIR`` keeps its permissions.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from advexp_core.cli.common import UsageError

__all__ = ["MARKER", "add_out_argument", "check_output_folder", "output_folder"]

MARKER = ".advexp-run.json"
_PARTIAL = ".advexp-partial-"


def add_out_argument(parser: argparse.ArgumentParser, files: str) -> None:
    """``--out DIR`` (``files``: what the run writes there) and ``--into-existing``."""
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        help=f"output folder ({files}); new, empty, or an earlier run's. Nothing else in it is touched",
    )
    parser.add_argument(
        "--into-existing",
        action="store_true",
        help="write into an --out folder that holds other files (they are kept; none is replaced)",
    )


def _own_files(folder: Path) -> set[str]:
    """The files an earlier advexp run wrote into ``folder`` (from its marker; none if unreadable)."""
    marker = folder / MARKER
    if not marker.is_file() or marker.is_symlink():
        return set()
    try:
        listed = json.loads(marker.read_text(encoding="utf-8")).get("files", [])
    except (OSError, ValueError, AttributeError):
        return set()
    return {
        name for name in listed if isinstance(name, str) and "/" not in name and name not in ("", ".", "..")
    }


def _list(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(sorted(names)[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_output_folder(args: argparse.Namespace) -> None:
    """Refuse ``args.out`` before any work when it is a file or holds files advexp did not write
    (unless ``args.into_existing``): a long run should not end in a refusal."""
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out} exists and is not a folder.")
    if not out.is_dir() or getattr(args, "into_existing", False):
        return
    own = _own_files(out)
    try:
        others = [
            p.name + ("/" if p.is_dir() else "")
            for p in out.iterdir()
            if p.name != MARKER and p.name not in own and not p.name.startswith(_PARTIAL)
        ]
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot read the folder ({exc.strerror or exc}).") from exc
    if others:
        raise UsageError(
            f"--out {args.out} already holds files that advexp did not write ({_list(others)}); "
            "choose a new or empty folder, or add --into-existing to write beside them "
            "(nothing in it is deleted or replaced)."
        )


@contextmanager
def output_folder(args: argparse.Namespace) -> Iterator[Path]:
    """Yield a scratch folder for the run's files; on success they are moved into ``args.out``.

    Raises UsageError, before the run writes anything, when ``args.out`` is a file or holds files
    that advexp did not write (unless ``args.into_existing``; `check_output_folder`), and after it
    when one of the run's files would replace such a file.
    """
    check_output_folder(args)  # again: the folder may have changed while the run computed
    out = Path(args.out).absolute()
    into_existing = bool(getattr(args, "into_existing", False))
    created = not out.exists()
    own = set() if created else _own_files(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=_PARTIAL, dir=out))
    except OSError as exc:
        raise UsageError(f"--out {args.out}: cannot write there ({exc.strerror or exc}).") from exc
    try:
        yield scratch
        written = sorted(p.name for p in scratch.iterdir())
        clashes = [n for n in written if n not in own and os.path.lexists(out / n)]
        if clashes:
            raise UsageError(
                f"--out {args.out} already holds {_list(clashes)}, which advexp did not write; "
                "nothing was replaced. Choose another folder."
            )
        for name in written:
            os.replace(scratch / name, out / name)
        keep = set(written)
        if into_existing:  # a shared folder: add, never remove
            keep |= {name for name in own if (out / name).is_file()}
        else:  # the folder is advexp's own: a rerun replaces the earlier run as a whole
            for name in own - keep:
                stale = out / name
                if stale.is_file() and not stale.is_symlink():
                    stale.unlink()
        marker = json.dumps({"files": sorted(keep)}, indent=1) + "\n"
        (out / MARKER).write_text(marker, encoding="utf-8")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # the run failed before writing: leave no empty folder behind
