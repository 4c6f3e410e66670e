"""A folder that holds an audit while it runs: what is done, batch by batch, so it can be resumed.

An audit of hundreds of images takes hours on a CPU; a Ctrl-C, a closed laptop or a killed process
must not lose what is done. The store keeps, in a folder of its own:

- ``state.json``: the manifest (what is audited with which settings: a resumed run must match it),
  the batch size, and how many batches are done. It is replaced atomically, last, after each batch:
  it is the commit;
- ``rows.jsonl``: every audited image's row (`ImageRow.record`, exact), ``skipped.jsonl``: the images
  that could not be read, with why;
- text tables the caller keeps up to date as rows come (e.g. ``images.csv``), rewritten on resume;
- ``pictures/``: PNG files per image (``NNNNNN-key.png``), all of them or only those of the images a
  report will show (`audit_records.shown_images`; the others are dropped as the audit goes).

Lines written after the last commit (a batch cut off half-way) are dropped when the store is opened
again, so a resumed audit starts at a batch boundary and computes what an uninterrupted one would.
The store deletes only the files it wrote, by name, and its folder only once it is empty.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advexp_core.experiments.audit_records import ImageAudit, ImageRow, Skipped, shown_images
from advexp_core.experiments.audit_stream import AuditBatch

FORMAT = "advexp-audit-store/1"
STATE, ROWS, SKIPPED, PICTURES = "state.json", "rows.jsonl", "skipped.jsonl", "pictures"
_PICTURE = re.compile(r"^(\d{6})-([a-z0-9_-]+)\.png$")


class StoreError(ValueError):
    """A store that cannot be created or resumed: the message says why and what to do."""


@dataclass(frozen=True)
class Progress:
    """What a store holds: its manifest, the batch size, the batches done and their rows."""

    manifest: dict[str, Any]
    batch_size: int
    batches_done: int
    rows: tuple[ImageRow, ...]
    skipped: tuple[Skipped, ...]


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a file (a last line cut off by a kill is dropped)."""
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        try:
            out.append(json.loads(line))
        except ValueError:
            break
    return out


def _lines(records: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _append(path: Path, text: str) -> None:
    if not text:
        return
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


class AuditStore:
    """An audit's rows and pictures in ``folder``, committed a batch at a time (see the module docstring).

    Make one with `create` (a new folder) or `resume` (an earlier run's, whose manifest must match).
    """

    def __init__(self, folder: Path, progress: Progress, tables: Sequence[str], keep_all: bool) -> None:
        self.folder = folder
        self.progress = progress
        self.tables = tuple(tables)
        self.keep_all = keep_all
        self._rows = list(progress.rows)
        self._skipped = list(progress.skipped)

    # --- making and opening ---------------------------------------------------------------------

    @staticmethod
    def holds_audit(folder: Path) -> bool:
        """Whether ``folder`` is a store (its state file says so)."""
        return _state(folder) is not None

    @classmethod
    def create(
        cls,
        folder: Path,
        manifest: Mapping[str, Any],
        *,
        batch_size: int,
        tables: Mapping[str, str] | None = None,
        keep_all_pictures: bool = False,
    ) -> AuditStore:
        """A new store in ``folder`` (made; it must not exist, or be an empty folder).

        Args:
            manifest: JSON-able: what is audited with which settings (compared on resume).
            batch_size: images per batch.
            tables: file name -> its first lines (e.g. a CSV header); rows are appended by `commit`.
            keep_all_pictures: keep every image's pictures (False: only those a report shows).
        """
        if folder.exists() and (not folder.is_dir() or folder.is_symlink() or any(folder.iterdir())):
            raise StoreError(f"{folder} exists and is not an empty folder; nothing was changed.")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / PICTURES).mkdir()
        tables = dict(tables or {})
        for name, head in tables.items():
            _write_atomic(folder / _table_name(name), head)
        for name in (ROWS, SKIPPED):
            (folder / name).touch()
        progress = Progress(_as_json(manifest), batch_size, 0, (), ())
        store = cls(folder, progress, list(tables), keep_all_pictures)
        store._write_state()
        return store

    @classmethod
    def resume(
        cls, folder: Path, manifest: Mapping[str, Any], *,
        tables: Callable[[list[ImageRow]], Mapping[str, str]] | None = None, keep_all_pictures: bool = False,
    ) -> AuditStore:  # fmt: skip
        """The store in ``folder`` when its manifest equals ``manifest``; rows after its last commit
        are dropped, and each table is rewritten as ``tables(rows kept)[name]``.

        Raises:
            StoreError: no store there, or one made for another audit (the message names what differs).
        """
        state = _state(folder)
        if state is None:
            raise StoreError(f"{folder} holds no interrupted audit.")
        manifest = _as_json(manifest)
        differs = [
            k
            for k in sorted(set(state["manifest"]) | set(manifest))
            if state["manifest"].get(k) != manifest.get(k)
        ]
        if differs:
            raise StoreError(
                f"the interrupted audit in {folder.parent} was made with other {', '.join(differs)}; "
                "run it with the same images, marks, network and settings, or start a new one."
            )
        size, done = int(state["batch_size"]), int(state["batches_done"])
        rows = [ImageRow.from_record(r) for r in _read_lines(folder / ROWS) if r["index"] < done * size]
        skipped = [Skipped(**s) for s in _read_lines(folder / SKIPPED) if s["index"] < done * size]
        _write_atomic(folder / ROWS, _lines(r.record() for r in rows))
        _write_atomic(folder / SKIPPED, _lines(s.to_json() for s in skipped))
        texts = dict(tables(rows)) if tables is not None else {}
        for name, text in texts.items():
            _write_atomic(folder / _table_name(name), text)
        progress = Progress(dict(state["manifest"]), size, done, tuple(rows), tuple(skipped))
        return cls(folder, progress, list(texts), keep_all_pictures)

    # --- a batch at a time ------------------------------------------------------------------------

    @property
    def rows(self) -> list[ImageRow]:
        return list(self._rows)

    @property
    def skipped(self) -> list[Skipped]:
        return list(self._skipped)

    @property
    def batches_done(self) -> int:
        return self.progress.batches_done

    def wanted(self, rows: Sequence[ImageRow]) -> set[int]:
        """The images among ``rows`` (a batch about to be committed) whose pictures the store keeps."""
        if self.keep_all:
            return {r.index for r in rows}
        return set(shown_images([*self._rows, *rows])) & {r.index for r in rows}

    def commit(
        self,
        rows: Sequence[ImageRow],
        skipped: Sequence[Skipped],
        *,
        pictures: Mapping[int, Mapping[str, bytes]] | None = None,
        tables: Mapping[str, str] | None = None,
    ) -> None:
        """Add one batch: its pictures (image index -> key -> PNG), its rows, the tables' new lines,
        then the commit; then drop the pictures of images no longer shown (`shown_images`)."""
        for index, panels in (pictures or {}).items():
            for key, png in panels.items():
                (self.folder / PICTURES / _picture_name(index, key)).write_bytes(png)
        _append(self.folder / ROWS, _lines(r.record() for r in rows))
        _append(self.folder / SKIPPED, _lines(s.to_json() for s in skipped))
        for name, text in (tables or {}).items():
            _append(self.folder / _table_name(name), text)
        self._rows += rows
        self._skipped += skipped
        self.progress = Progress(
            self.progress.manifest, self.progress.batch_size, self.progress.batches_done + 1, (), ()
        )
        self._write_state()
        if not self.keep_all:
            self._drop_pictures(set(shown_images(self._rows)))

    def pictures(self, index: int) -> dict[str, bytes]:
        """The pictures kept of one image: key -> PNG, in the order of their keys."""
        found = sorted(
            (match.group(2), path)
            for path in (self.folder / PICTURES).glob(f"{index:06d}-*.png")
            if (match := _PICTURE.match(path.name))
        )
        return {key: path.read_bytes() for key, path in found}

    def picture_files(self) -> list[tuple[int, str, Path]]:
        """Every picture kept: (image index, key, file), in order."""
        out = []
        for path in sorted((self.folder / PICTURES).iterdir()):
            match = _PICTURE.match(path.name)
            if match:
                out.append((int(match.group(1)), match.group(2), path))
        return out

    def table(self, name: str) -> Path:
        return self.folder / _table_name(name)

    def remove(self) -> None:
        """Delete the files the store wrote (and nothing else), then its folders if they are empty."""
        for _, _, path in self.picture_files():
            path.unlink(missing_ok=True)
        for name in (
            STATE,
            STATE + ".tmp",
            ROWS,
            SKIPPED,
            ROWS + ".tmp",
            SKIPPED + ".tmp",
            *self._table_files(),
        ):
            (self.folder / name).unlink(missing_ok=True)
        for folder in (self.folder / PICTURES, self.folder):
            try:
                folder.rmdir()
            except OSError:
                pass  # something that is not the store's own lies there: left as it is

    # --- inside ---------------------------------------------------------------------------------------

    def _table_files(self) -> list[str]:
        names = [_table_name(n) for n in self.tables]
        return [*names, *(n + ".tmp" for n in names)]

    def _write_state(self) -> None:
        state = {
            "format": FORMAT, "manifest": self.progress.manifest, "batch_size": self.progress.batch_size,
            "batches_done": self.progress.batches_done, "tables": list(self.tables),
        }  # fmt: skip
        _write_atomic(self.folder / STATE, json.dumps(state, indent=1, ensure_ascii=False) + "\n")

    def _drop_pictures(self, keep: set[int]) -> None:
        for index, _, path in self.picture_files():
            if index not in keep:
                path.unlink(missing_ok=True)


def fill(
    store: AuditStore,
    batches: Iterable[AuditBatch],
    *,
    pictures: Callable[[ImageAudit], Mapping[str, bytes]],
    tables: Callable[[Sequence[ImageRow]], Mapping[str, str]],
) -> None:
    """Commit each batch to the store as it comes: its rows, the tables' lines ``tables(rows)``, and
    ``pictures(image)`` of the images the store keeps (`AuditStore.wanted`; drawn only for those)."""
    for batch in batches:
        rows = [image.row for image in batch.images]
        wanted = store.wanted(rows)
        drawn = {i.row.index: pictures(i) for i in batch.images if i.row.index in wanted}
        store.commit(rows, batch.skipped, pictures=drawn, tables=tables(rows))


def _as_json(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest as it reads back from its file (tuples become lists), to compare like with like."""
    value = json.loads(json.dumps(manifest, ensure_ascii=False))
    assert isinstance(value, dict)
    return value


def _state(folder: Path) -> dict[str, Any] | None:
    path = folder / STATE
    if folder.is_symlink() or not path.is_file() or path.is_symlink():
        return None
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("format") != FORMAT or "manifest" not in state:
        return None
    return state


def _table_name(name: str) -> str:
    if "/" in name or name.startswith(".") or name in (STATE, ROWS, SKIPPED, PICTURES):
        raise ValueError(f"not a table's file name: {name!r}")
    return name


def _picture_name(index: int, key: str) -> str:
    name = f"{index:06d}-{key}.png"
    if not _PICTURE.match(name):
        raise ValueError(f"not a picture's key: {key!r}")
    return name


__all__ = ["FORMAT", "AuditStore", "Progress", "StoreError", "fill"]
