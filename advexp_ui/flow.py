"""The life of a run on a page: asked for by a form button, shown again from the cache on later
reruns while nothing it depends on changed, forgotten when cancelled, and never a traceback."""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import streamlit as st

from advexp_ui import progress, render, state

T = TypeVar("T")
LOG = logging.getLogger("advexp_ui")
CANCELLED_KEY = "advexp_cancelled"


def requested(page: str, *, submitted: bool, key: Hashable) -> bool:
    """Should the page show the run for ``key`` now?

    True when the form was just submitted, or when it was submitted earlier for the same image,
    model and settings (the result then comes from the cache: no recomputation). A cancelled run
    is forgotten, so it does not start again.
    """
    store = state.run_key(page)
    if st.session_state.get(CANCELLED_KEY) == page:
        del st.session_state[CANCELLED_KEY]
        if not submitted:
            st.info("The run was cancelled before it finished. Press the run button to start again.")
    if submitted:
        st.session_state[store] = key
        return True
    return st.session_state.get(store) == key


def _cancelled(page: str) -> None:
    """The Cancel button's callback: runs before the page's next run, so that run does not restart."""
    st.session_state[CANCELLED_KEY] = page
    forget(page)


def forget(page: str) -> None:
    """Drop a page's run request (after an error, so it is not retried on every rerun)."""
    st.session_state.pop(state.run_key(page), None)


def run(
    page: str,
    label: str,
    job: Callable[..., T],
    show: Callable[[T], None],
    *,
    part: str = "main",
    show_partial: Callable[[Any], None] | None = None,
    where: Any = None,
) -> T | None:
    """Run ``job`` with a progress bar and ``show`` its result; on a problem, say so in place.

    ``part`` tells apart several runs on one page (their Cancel buttons need distinct keys).
    ``show_partial`` and ``where`` are `advexp_ui.progress.run_with_progress`'s: with
    ``show_partial`` the job is called as ``job(on_step, emit)`` and each emitted value is drawn
    as it arrives. A run waiting for a network shows its place in that network's line.
    Returns the result, or None when the run or its display failed.
    """
    with guard():
        result = progress.run_with_progress(
            label,
            job,
            key=f"cancel-{page}-{part}",
            on_cancel=lambda: _cancelled(page),
            show_partial=show_partial,
            where=where,
        )
        show(result)
        return result
    forget(page)
    return None


@contextmanager
def guard() -> Iterator[None]:
    """Show any failure as a message in place, never as a traceback.

    Expected problems (bad image, model, checkpoint, setting: all ``ValueError`` subclasses) show
    their own message; anything else a short one, with the details in the server log. Streamlit's
    stop and rerun signals are not ``Exception`` subclasses and pass through.
    """
    try:
        yield
    except progress.Cancelled:
        st.info("The run was cancelled.")
    except ValueError as exc:
        st.error(render.defuse_markdown(str(exc) or type(exc).__name__))
    except MemoryError:
        st.error("Not enough memory for this run. Try a smaller image, fewer steps or fewer targets.")
    except Exception as exc:
        LOG.exception("unexpected error on a page")
        detail = render.defuse_markdown(f"{type(exc).__name__}: {str(exc)[:300]}")
        st.error(f"Something went wrong ({detail}). Try other settings.")
