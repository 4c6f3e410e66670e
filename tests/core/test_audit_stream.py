"""The audit in batches: the adversarial explanation batched over images is each image's own, a
batch's numbers do not depend on what else it holds (bar SmoothGrad's noise, drawn per batch),
images of several sizes are fitted, an unreadable image is skipped and named; the store commits a
batch at a time, drops what came after its last commit, refuses another audit's manifest and
deletes only its own files; the images a report shows; the marks read from boxes and archives."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from advexp_core.data.imaging import ImageError, encode_png
from advexp_core.data.interventions import AuditError
from advexp_core.experiments.audit import audit
from advexp_core.experiments.audit_inputs import (
    AuditItem,
    box_mask,
    mask_png,
    read_archive,
    read_boxes,
)
from advexp_core.experiments.audit_records import AuditConfig, ImageRow, Skipped, chosen_images
from advexp_core.experiments.audit_store import ROWS, AuditStore, StoreError
from advexp_core.experiments.audit_stream import audit_batches, batch_size_for
from advexp_core.methods.explanations import adversarial_explanation
from tests.core.test_audit import SIZE, _corner, _grey, _loaded


def _images(n: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return list(torch.rand(n, 3, SIZE, SIZE, generator=gen))


def test_the_batched_adversarial_explanation_is_each_images_own() -> None:
    model = _loaded()
    images = _images(3)
    config = AuditConfig(methods=(), steps=6, batch_size=3)
    result = audit(model, images, [_corner(), None, _corner()], config=config)
    for image, row in zip(images, result.images, strict=True):
        alone = adversarial_explanation(
            model.module, image, ["runner-up"], class_names=model.class_names, steps=6
        )
        t = alone.targets[0]
        assert row.adversarial is not None and row.adversarial.toward == t.index
        assert row.adversarial.probability_after == pytest.approx(t.probability_after, abs=1e-5)
        assert row.adversarial.valid == t.valid


def test_a_batch_gives_each_image_what_it_gives_alone() -> None:
    model = _loaded()
    images, masks = _images(4), [_corner(), None, _corner(), None]
    config = AuditConfig(methods=("gradient", "ig"), adversarial=False)
    together = audit(model, images, masks, config=AuditConfig(**{**config.__dict__, "batch_size": 4}))
    apart = audit(model, images, masks, config=AuditConfig(**{**config.__dict__, "batch_size": 1}))
    for a, b in zip(together.images, apart.images, strict=True):
        assert a.margin == pytest.approx(b.margin, abs=1e-5) and a.prediction == b.prediction
        for method in ("gradient", "ig"):
            assert a.shares[method] == pytest.approx(b.shares[method], abs=1e-5) or a.shares[method] is None
    assert together.batch_size == 4 and together.to_json()["settings"]["batch_size"] == 4


def test_raw_images_of_several_sizes_are_fitted_and_an_unreadable_one_is_skipped() -> None:
    model = _loaded()
    big = torch.full((3, 2 * SIZE, 2 * SIZE), 0.3)
    big_mask = torch.zeros(2 * SIZE, 2 * SIZE, dtype=torch.bool)
    big_mask[:8, :8] = True

    def broken() -> tuple[torch.Tensor, torch.Tensor | None]:
        raise ImageError("The file is damaged or incomplete.")

    items = [
        AuditItem("big.png", lambda: (big, big_mask)),
        AuditItem("broken.png", broken),
        AuditItem("small.png", lambda: (_grey(1)[0], None)),
    ]
    done: list[tuple[int, int]] = []
    batches = list(audit_batches(model, items, config=AuditConfig(methods=("gradient",), adversarial=False),
                                 batch_size=2, on_step=lambda d, t: done.append((d, t))))  # fmt: skip
    assert [b.index for b in batches] == [0, 1] and done == [(0, 3), (2, 3), (3, 3)]
    rows = [i.row for b in batches for i in b.images]
    assert [r.name for r in rows] == ["big.png", "small.png"] and [r.index for r in rows] == [0, 2]
    assert rows[0].intervention == "removed" and rows[0].artifact_area == pytest.approx(1 / 16)
    assert batches[0].skipped == (Skipped(1, "broken.png", "broken.png: The file is damaged or incomplete."),)


def test_the_batch_size_comes_from_the_device_and_the_image_size() -> None:
    model = _loaded()  # 16 px: many images a batch, never more than the bound
    assert batch_size_for(model) == 256
    assert batch_size_for(model, AuditConfig(batch_size=5)) == 5
    with pytest.raises(ValueError, match="batch_size"):
        AuditConfig(batch_size=0)


def _row(index: int, effect: float, *, changed: bool = False, share: float | None = 0.5) -> ImageRow:
    return ImageRow(
        index=index, name=f"i{index}.png", label=None, reference=0, intervention="removed",
        artifact_area=0.25, prediction=0, prediction_after=1 if changed else 0, confidence=0.9,
        confidence_after=0.6, probability=0.9, probability_after=0.4, margin=2.0, margin_after=2.0 + effect,
        shares={"gradient": share},
    )  # fmt: skip


def test_the_images_shown_once_left_out_never_come_back() -> None:
    rows = [_row(k, effect=float((k * 7) % 11) - 5, changed=k % 3 == 0, share=0.1) for k in range(40)]
    seen_out: set[int] = set()
    for n in range(1, len(rows) + 1):
        chosen = set(chosen_images(rows[:n], each=3))
        assert not chosen & seen_out
        seen_out |= {r.index for r in rows[:n]} - chosen
    final = chosen_images(rows, each=3)
    assert [k for k, why in final.items() if "a map hid the artifact" in why] == [0, 3, 6]
    assert len(final) <= 9


def test_a_row_reads_back_exactly() -> None:
    row = _row(3, effect=-1.2345678901234567, changed=True, share=None)
    assert ImageRow.from_record(json.loads(json.dumps(row.record()))) == row


def test_the_store_commits_batches_and_resumes_at_the_last_commit(tmp_path: Path) -> None:
    folder = tmp_path / "partial"
    manifest = {"settings": {"methods": ("gradient",)}, "images": [["a.png", 1, 2]]}
    store = AuditStore.create(folder, manifest, batch_size=2, tables={"t.csv": "head\n"})
    first = [_row(0, 1.0), _row(1, -3.0, changed=True, share=0.0)]
    wanted = store.wanted(first)
    store.commit(first, [], pictures={k: {"0-image": b"png"} for k in wanted}, tables={"t.csv": "a\nb\n"})
    with open(folder / ROWS, "a") as handle:  # the next batch, cut off before its commit
        handle.write(json.dumps(_row(2, 0.0).record()) + "\n" + '{"index": 3, "na')
    again = AuditStore.resume(folder, manifest, tables=lambda rows: {"t.csv": "head\n" + "x\n" * len(rows)})
    assert again.batches_done == 1 and again.rows == first
    assert (folder / "t.csv").read_text() == "head\nx\nx\n"
    assert again.pictures(1) == {"0-image": b"png"}
    with pytest.raises(StoreError, match="other settings"):
        AuditStore.resume(folder, {**manifest, "settings": {"methods": ["ig"]}})
    (folder / "pictures" / "mine.txt").write_text("not the store's")
    again.remove()
    assert sorted(p.name for p in folder.rglob("*")) == ["mine.txt", "pictures"]  # only its own files went
    with pytest.raises(StoreError, match="not an empty folder"):
        AuditStore.create(folder, manifest, batch_size=2)


# --- marks: boxes and archives --------------------------------------------------------------------------


def test_boxes_are_read_checked_and_drawn() -> None:
    boxes = read_boxes("name,x0,y0,x1,y1\na.png,0,0,4,2\n# a note\nsub/a.png,2,2,3,3\nb.jpg,1,1,2,2\n")
    assert boxes == {"a": [(0, 0, 4, 2), (2, 2, 3, 3)], "b": [(1, 1, 2, 2)]}
    mask = box_mask(boxes["a"], 4, 5, "a.png")
    assert int(mask.sum()) == 9 and bool(mask[2, 2]) and not bool(mask[3, 4])
    with pytest.raises(AuditError, match="reaches outside the image"):
        box_mask([(0, 0, 6, 1)], 4, 5, "a.png")
    for bad in ("a.png,0,0,4\n", "a.png,0,0,-4,2\n", "a.png,0,0,x,2\n", "a.png,3,0,1,2\n"):
        with pytest.raises(AuditError, match="line 1"):
            read_boxes(bad)


def _png(size: int = 8, colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _zip(members: dict[str, bytes], links: tuple[str, ...] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            if name in links:
                info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def test_an_archive_gives_its_images_with_their_masks_and_names_what_it_leaves_out() -> None:
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:2] = True
    data = _zip({
        "set/a.png": _png(), "set/masks/a.png": mask_png(mask), "set/b.png": _png(), "other/b.png": _png(),
        "boxes.csv": b"name,x0,y0,x1,y1\nb.png,0,0,2,2\n", "../evil.png": _png(), "/abs.png": _png(),
        "link.png": b"/etc/passwd", "notes.txt": b"hello", "__MACOSX/set/._a.png": b"junk",
        "set/masks/ghost.png": mask_png(mask),
    }, links=("link.png",))  # fmt: skip
    archive = read_archive(data)
    assert [i.name for i in archive.items] == ["b.png", "a.png", "b (2).png"]
    left = " | ".join(archive.left_out)
    for expected in ("../evil.png: a path that leaves the archive", "/abs.png: an absolute path",
                     "link.png: a symbolic link", "notes.txt: not an image", "ghost.png: no image of this name"):  # fmt: skip
        assert expected in left
    assert "MACOSX" not in left and archive.n_masks == 1 and archive.n_boxed == 1
    image, got = archive.items[1].load()
    assert tuple(image.shape) == (3, 8, 8) and got is not None and torch.equal(got, mask)
    _, boxed = archive.items[0].load()
    assert boxed is not None and int(boxed.sum()) == 4
    assert archive.items[2].load()[1] is None  # the second b.png: its stem's boxes go to the first


def test_an_archive_that_is_a_bomb_or_too_large_is_refused() -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("flat.png", b"\0" * 5_000_000)
    with pytest.raises(AuditError, match="ZIP bomb"):
        read_archive(bomb.getvalue())
    with pytest.raises(AuditError, match="at most 2 per audit"):
        read_archive(_zip({f"{k}.png": _png() for k in range(3)}), max_images=2)
    with pytest.raises(AuditError, match="not a readable ZIP"):
        read_archive(b"PK\3\4 not really")
    with pytest.raises(AuditError, match="no image"):
        read_archive(_zip({"notes.txt": b"x"}))


def test_a_damaged_image_in_an_archive_is_skipped_when_its_batch_comes() -> None:
    archive = read_archive(_zip({"a.png": encode_png(_grey(1)[0]), "b.png": _png()[:40]}))
    batches = list(audit_batches(_loaded(), archive.items, config=AuditConfig(methods=(), adversarial=False)))
    assert [i.row.name for i in batches[0].images] == ["a.png"]
    assert batches[0].skipped[0].name == "b.png" and "b.png: " in batches[0].skipped[0].reason
