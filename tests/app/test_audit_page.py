"""The Audit a shortcut page in AppTest: with the lesion test images (rulers pre-marked), a run starts a
background job, whose page (found again by its link in a fresh session, as after a reload) shows its
progress, then the summary verdict with its numbers, each image's reading and pictures, and the
downloads; a ZIP of images with masks or boxes is read with every refused member named; a session
runs one audit at a time, and a cancelled one says so; without an image the page asks for one."""

from __future__ import annotations

import io
import time
import zipfile

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

import advexp_ui.jobs.audit as job
from advexp_core.networks.registry import load_model
from advexp_core.networks.zoo import ModelError
from advexp_ui import background
from tests.app.conftest import ROOT, TIMEOUT_S, assert_clean, by_label, submit

SCRIPT = "pages/7_Audit_a_shortcut.py"
DONE = "What the audit measured"


def _page() -> AppTest:
    at = AppTest.from_file(str(ROOT / SCRIPT), default_timeout=TIMEOUT_S)
    at.session_state["advexp_model_id"] = "digits-standard"
    return at


def _headers(at: AppTest) -> str:
    return " ".join(h.value for h in at.header)


def finish(at: AppTest, timeout_s: float = 240.0) -> AppTest:
    """Rerun the page until its background audit has ended (the job runs in a thread of this process)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        at.run()
        job_id = at.session_state["advexp_audit_job"] if "advexp_audit_job" in at.session_state else None
        found = background.registry().get(job_id)
        if found is None or found.wait(0.3):  # ended: one more run draws the outcome
            return at.run()
    raise AssertionError("the audit did not finish in time")


def test_asks_for_images_first() -> None:
    at = _page().run()
    assert_clean(at)
    assert any("Upload a few images" in i.value for i in at.info)


def test_lesion_images_audit_end_to_end_as_a_background_job(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        load_model("lesions-standard", device="cpu")
    except ModelError as exc:
        pytest.skip(f"lesions-standard is not shipped ({exc})")
    monkeypatch.setattr(job, "LESION_IMAGES", (3, 100))
    monkeypatch.setattr(job, "LESION_DEFAULT", 3)
    job.lesion_items.clear()
    at = _page().run()
    at.radio(key="audit-source").set_value("lesions").run()
    assert_clean(at)
    captions = " ".join(c.value for c in at.caption)
    assert "lesion-0.png: artifact marked" in captions
    by_label(at.multiselect, "Explainers").set_value(["gradient", "gradcam"])
    by_label(at.checkbox, "Adversarial explanation").uncheck()
    by_label(at.number_input, "Tolerance").set_value(5.0)
    captions = " ".join(c.value for c in at.run().caption)
    assert "3 marked images" in captions and "needs 73 marked images; 70 more would settle it" in captions
    at = submit(at, "audit-form", "Run the audit")
    job_id = at.session_state["advexp_audit_job"]
    assert at.query_params["job"] == [job_id] or at.query_params["job"] == job_id
    at = finish(at)
    assert_clean(at)
    assert DONE in _headers(at)
    verdicts = " ".join(m.value for m in [*at.warning, *at.success, *at.info])
    assert (
        "Removing the artifact changed" in verdicts and "of decisions" in verdicts and "interval" in verdicts
    )
    cells = " ".join(str(v) for df in at.dataframe for v in df.value.astype(str).values.ravel())
    assert "[" in cells and "]" in cells  # rates with their intervals in the tables
    assert "the marked artifact" in verdicts  # each image's measured reading
    text = " ".join(m.value for m in at.markdown)
    assert "of its mass on the artifact" in text  # each map's reading, with its numbers
    labels = [str(getattr(d, "label", "")) for d in at.get("download_button")]
    assert any("audit-report.html" in label for label in labels) and any(
        "audit.zip" in label for label in labels
    )
    # A fresh session with the link (a reload, another tab): the same audit, nothing recomputed.
    again = _page()
    again.query_params["job"] = job_id
    again.run()
    assert_clean(again)
    assert DONE in _headers(again) and again.session_state["advexp_audit_job"] == job_id
    job.lesion_items.clear()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (32, 32), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_zip_with_masks_and_boxes_is_audited_and_what_it_leaves_out_is_named() -> None:
    mask = Image.new("L", (32, 32), 0)
    mask.paste(255, (0, 0, 8, 8))
    buffer = io.BytesIO()
    mask.save(buffer, format="PNG")
    archive = _zip({
        "set/a.png": _png((200, 30, 30)), "set/masks/a.png": buffer.getvalue(), "set/b.png": _png((0, 90, 200)),
        "set/c.png": _png((30, 200, 30), (48, 40)), "boxes.csv": b"name,x0,y0,x1,y1\nb.png,0,0,8,8\n",
        "../up.png": _png((1, 2, 3)), "notes.txt": b"my notes", "set/d.png": b"not really a png",
    })  # fmt: skip
    at = _page().run()
    at.radio(key="audit-source").set_value("archive").run()
    assert "200 MB" in " ".join(c.value for c in at.caption)  # the one limit, stated
    at.file_uploader(key="audit-archive").set_value(("set.zip", archive, "application/zip")).run()
    messages = " ".join(m.value for m in [*at.warning, *at.info])
    assert "../up.png: a path that leaves the archive" in messages and "notes.txt: not an image" in messages
    assert "4 images: 1 marked by a mask, 1 by boxes, 2 without a mark" in messages
    by_label(at.multiselect, "Explainers").set_value(["gradient"])
    by_label(at.checkbox, "Adversarial explanation").uncheck()
    at = finish(submit(at, "audit-form", "Run the audit"))
    assert not at.exception, [e.value for e in at.exception]
    assert DONE in _headers(at)
    assert "d.png" in " ".join(w.value for w in at.warning)  # unreadable: skipped while the audit ran
    assert {s.value for s in at.subheader} >= {"a.png", "b.png", "c.png"}


def test_one_audit_at_a_time_per_session_and_a_cancel_is_said() -> None:
    release = background.threading.Event()

    def slow(j: background.Job) -> None:
        while not release.wait(0.05):
            j.on_step(0, 1)

    jobs = background.registry()
    first = jobs.start("owner-x", "a slow run", slow)
    with pytest.raises(background.JobRefused, match="running “a slow run” already"):
        jobs.start("owner-x", "another", slow)
    first.cancel()
    assert first.wait(10) and first.state == "cancelled"
    release.set()
    assert background.progress_text(40, 200, 0, 20.0).startswith(
        "40 of 200 images · 2.00 images/s · 80 s left"
    )
    assert "about 3 min left" in background.progress_text(20, 200, 0, 20.0)


def test_a_failed_job_says_why_and_a_finished_one_is_forgotten_with_its_files(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jobs = background.Jobs()
    removed: list[str] = []

    def bad(_: background.Job) -> None:
        raise ValueError("the mask is 10×10 but the image is 32×32")

    failed = jobs.start("owner-y", "a bad run", bad, cleanup=lambda: removed.append("files"))
    assert failed.wait(10)
    assert failed.state == "failed" and failed.error == "the mask is 10×10 but the image is 32×32"
    assert jobs.get(failed.id) is failed and not removed  # kept: its page shows why
    monkeypatch.setattr(background, "KEEP_S", -1)  # every ended job is older than that
    assert jobs.get(failed.id) is None and removed == ["files"]


def test_many_lesion_images_come_pre_marked_with_what_they_can_settle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    try:
        load_model("lesions-standard", device="cpu")
    except ModelError as exc:
        pytest.skip(f"lesions-standard is not shipped ({exc})")
    job.lesion_items.clear()
    at = _page().run()
    at.radio(key="audit-source").set_value("lesions").run()
    at.select_slider(key="audit-lesion-n").set_value(200).run()
    assert_clean(at)
    captions = " ".join(c.value for c in at.caption)
    assert "200 lesion test images" in captions and "exact mask" in captions
    n_rulers = sum(bool(i.mask) for i in job.lesion_items(200))
    assert f"{n_rulers} marked images" in captions and "these are enough" in captions
    assert not at.get("button") or all("Clear the mark" not in str(b.label) for b in at.button)
    job.lesion_items.clear()
