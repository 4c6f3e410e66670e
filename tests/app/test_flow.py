"""Progress, errors and downloads: the pieces every page shares."""

from __future__ import annotations

import io
import json
import math
import zipfile

from streamlit.testing.v1 import AppTest

from advexp_ui import downloads


def _script() -> None:
    import streamlit as st

    from advexp_ui import flow

    seen: list[tuple[int, int]] = []

    def job(on_step):
        for k in range(1, 4):
            on_step(k, 3)
            seen.append((k, 3))
        return "the value"

    def show(value):
        st.write(f"shown={value}")

    st.write(f"value={flow.run('demo', 'Working', job, show)} steps={len(seen)}")

    def bad(on_step):
        raise ValueError("ρ must be positive")

    def broken(on_step):
        raise RuntimeError("CUDA out of memory")

    st.write(f"bad={flow.run('demo', 'Failing', bad, show, part='bad')}")
    st.write(f"broken={flow.run('demo', 'Breaking', broken, show, part='broken')}")

    def fails_to_show(value):
        raise KeyError("predictions")

    st.write(f"display={flow.run('demo', 'Showing', job, fails_to_show, part='show')}")


def test_progress_runs_in_a_status_and_failures_show_messages_not_tracebacks() -> None:
    at = AppTest.from_function(_script, default_timeout=60).run()
    assert not at.exception
    text = [m.value for m in at.markdown]
    assert "shown=the value" in text and "value=the value steps=3" in text
    assert "bad=None" in text and "broken=None" in text and "display=None" in text
    assert len(at.status) == 4
    errors = [e.value for e in at.error]
    assert errors[0] == "ρ must be positive"
    assert "RuntimeError" in errors[1] and "Traceback" not in errors[1]
    assert "KeyError" in errors[2]


def test_report_json_is_strict_json_and_the_zip_holds_every_file() -> None:
    data = downloads.report_bytes({"psnr": math.inf, "rows": [1.0, math.nan], "seed": 3})
    assert json.loads(data) == {"psnr": None, "rows": [1.0, None], "seed": 3}
    files = {"adversarial.png": b"\x89PNG...", "report.json": data}
    with zipfile.ZipFile(io.BytesIO(downloads.zip_bytes(files))) as archive:
        assert {n: archive.read(n) for n in archive.namelist()} == files
