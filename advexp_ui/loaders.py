"""Models for the pages: registered ids cached once per server (shared by every session), and the
session's own uploaded weights kept in that session only.

A cached ``LoadedModel`` is shared across sessions and threads: the core never mutates a model, and
each experiment holds ``LoadedModel.lock`` for its whole run (see ``advexp_core.experiments``).
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import logging
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import streamlit as st

from advexp_core.base import runtime
from advexp_core.networks.registry import DEFAULT_MODEL_ID, LoadedModel, ModelInfo, list_models, load_model
from advexp_core.networks.zoo import ModelError
from advexp_ui import gallery, state
from advexp_ui.jobs.common import classify

LOG = logging.getLogger("advexp_ui")

USER_PREFIX = "user:"
GROUP_ORDER = (
    "ImageNet (offline default)",
    "Robust ImageNet networks (download)",
    "The paper's CIFAR-10 networks",
    "This project's digits networks",
    "This project's ground-truth networks",
    "ImageNet (download)",
)


@st.cache_resource(show_spinner="Loading the model (once per server)…", max_entries=6)
def cached_model(model_id: str) -> LoadedModel:
    """A registered model, loaded once and shared by every session (keyed by model id).

    The default network is usually ready already (`warm_start`); asked for while the warm-up
    thread is still loading it, Streamlit's per-key lock makes the page wait for that load.
    """
    return load_model(model_id)


# The server's threads per tensor operation: the core's one policy, which the CLI uses too, so
# that a page and `advexp` give the same numbers for the same settings. On a shared 2-core
# machine PyTorch's default (every core) also let one run spin-wait for busy cores: one
# EfficientNet-Lite0 forward+backward at 224 px took 0.07 s with one thread, 0.1-3.6 s with two.
THREADS_ENV = runtime.THREADS_ENV
intra_op_threads = runtime.compute_threads


@st.cache_resource(show_spinner=False)
def warm_start() -> threading.Thread:
    """Start, once per server process, a thread that readies the default network.

    The first page run of the server calls this (every page does, cheaply afterwards): Streamlit
    runs no project code before a first session (or its script health check) connects. The
    first forward pass through a network on the CPU also pays one-off costs (allocations,
    kernel choice) that a visitor should not wait for. The server's thread setting is made
    here too, once (`advexp_core.base.runtime.use_compute_threads`).
    """
    runtime.use_compute_threads()
    thread = threading.Thread(target=_warm, args=(DEFAULT_MODEL_ID,), name="advexp-warm", daemon=True)
    thread.start()
    return thread


PAGE_MODULES = tuple(
    f"advexp_ui.views.{name}"
    for name in ("attack", "explanations", "explainers", "groundtruth", "robustness")
)


def _warm(model_id: str) -> None:
    """The warm-up thread's work: the model, then the home page's top-5 of the default image, then
    the pages' own imports (captum, matplotlib…), and last `freeze_heap`.

    The model and top-5 land in the server's caches (`cached_model`, `classify`), so the home page
    of the first visitor after the warm-up is drawn from them.
    """
    try:
        model = cached_model(model_id)  # a page asking meanwhile waits for this same load
        classify(gallery.entry_bytes(state.DEFAULT_IMAGE), model_id, model)
    except Exception:  # offline without weights, say: the page will tell the user
        LOG.warning("could not warm up %s", model_id, exc_info=True)
    for name in PAGE_MODULES:
        importlib.import_module(name)
    freeze_heap()


def freeze_heap() -> None:
    """Move every object the server holds now (modules, the default network) out of the garbage
    collector's view, once the warm-up is done.

    Streamlit runs a full collection after every script run (`runner.postScriptGC`), holding the
    GIL: with torch, captum and matplotlib loaded that took 0.3-0.6 s per run on a 2-core CPU, so
    each visitor's page (and, in a full room, every session's rerun) stalled the server's event
    loop and the health endpoint for that long. Frozen objects are never collected, which costs
    nothing for objects that live as long as the server; objects made later are collected as
    before (`gc.freeze`).
    """
    gc.collect()
    gc.freeze()


@st.cache_data(show_spinner=False, ttl=300)
def model_infos() -> list[ModelInfo]:
    """The registry in display order (groups as in ``GROUP_ORDER``), refreshed every 5 minutes."""
    rank = {group: k for k, group in enumerate(GROUP_ORDER)}
    return sorted(list_models(), key=lambda info: rank.get(info.group, len(rank)))


def get_model(model_id: str) -> LoadedModel:
    """The model for an id: the session's own weights for ``user:…`` ids, else the shared cache.

    Raises:
        ModelError: unknown id, weights missing offline, or the session's own model is gone.
    """
    if model_id.startswith(USER_PREFIX):
        user = st.session_state.get(state.USER_MODEL_KEY)
        if isinstance(user, LoadedModel) and user.model_id == model_id:
            return user
        raise ModelError(
            "Your own model is not loaded in this browser session any more; load it again on the "
            "'Your own model' page."
        )
    return cached_model(model_id)


@dataclass(frozen=True)
class UserModelSpec:
    """Everything that defines the user's own model besides the file's bytes.

    ``arch`` is a torchvision name, ``timm:NAME``, or None for an ONNX file; ``mean``, ``std`` and
    ``input_size`` are None to take the architecture's (or the file's); with ``file_size_first`` an
    ONNX file that fixes its input size keeps it (`advexp_core.networks.registry.load_user_model`).
    """

    arch: str | None
    class_names: tuple[str, ...]
    mean: tuple[float, ...] | None = None  # three values, or one for every channel
    std: tuple[float, ...] | None = None
    input_size: int | None = None
    single_logit: bool = False
    file_size_first: bool = False


USER_SUFFIXES = (".safetensors", ".pt", ".pth", ".onnx")


@st.cache_data(show_spinner=False)
def timm_names(query: str) -> list[str]:
    """timm's architecture names matching a search (`advexp_core.networks.own_models.timm_names`)."""
    from advexp_core.networks.own_models import timm_names as names

    return names(query)


def load_user_weights(file_name: str, data: bytes, spec: UserModelSpec) -> LoadedModel:
    """Load an uploaded model safely (``.safetensors``, a state_dict ``.pt``/``.pth``, or ``.onnx``;
    never unpickling code, never following an ONNX file's external-data paths).

    The bytes go to a private temporary folder that is removed afterwards, whatever happens. The
    model id names the file and settings by hash, so results of different models never mix.

    Raises:
        ModelError: wrong suffix, unsafe or unreadable file, weights of another architecture, an
            ONNX graph that is refused or converts wrongly.
    """
    from advexp_core.networks.registry import load_user_model

    suffix = Path(file_name).suffix.lower()
    if suffix not in USER_SUFFIXES:
        raise ModelError(
            "Upload a .safetensors file, a PyTorch state_dict saved as .pt or .pth, or an .onnx file."
        )
    digest = hashlib.sha256(data + repr(spec).encode()).hexdigest()[:12]
    # The user's own file name, made safe as a path and as text that pages show as Markdown (the
    # sidebar, titles), so that messages name the file they chose.
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(file_name).stem)[:80] or "weights"
    with tempfile.TemporaryDirectory(prefix="advexp-weights-") as folder:
        path = Path(folder) / f"{stem}{suffix}"
        path.write_bytes(data)
        loaded = load_user_model(
            spec.arch,
            path,
            spec.class_names,
            mean=spec.mean,
            std=spec.std,
            input_size=spec.input_size,
            single_logit=spec.single_logit,
            file_size_first=spec.file_size_first,
        )
    what = spec.arch or "ONNX"
    return replace(
        loaded,
        model_id=f"{USER_PREFIX}{digest}",
        title=f"Your model: {stem[:40]} ({what})",
        source=f"your upload {stem}{suffix} ({what}), kept in this browser session only",
    )


def parse_class_names(text: str) -> tuple[str, ...]:
    """Class names pasted one per line (or comma-separated on one line); blanks dropped."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) == 1 and "," in lines[0]:
        lines = [part.strip() for part in lines[0].split(",") if part.strip()]
    return tuple(lines)


def parse_triplet(text: str, name: str) -> tuple[float, ...]:
    """Three comma-separated numbers (a per-channel mean or std in [0, 1] units), or one for every
    channel (a grey network's)."""
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ModelError(
            f"The {name} must be three numbers separated by commas, e.g. 0.485, 0.456, 0.406 "
            "(or one, e.g. 0.5)."
        ) from None
    if len(values) not in (1, 3):
        raise ModelError(
            f"The {name} must be three numbers (red, green, blue) or one (every channel), got {len(values)}."
        )
    if name == "std" and min(values) <= 0:
        raise ModelError("Every std value must be greater than 0.")
    return values


def titles(infos: Sequence[ModelInfo]) -> dict[str, str]:
    """model id -> the label shown in the model chooser."""
    return {
        info.model_id: info.title + ("" if info.available_offline else " (needs a download)")
        for info in infos
    }


def contrast_pair(model_id: str) -> tuple[str, str]:
    """A standard and a robust network to compare, of the chosen model's family when it has both."""
    family = "digits-" if model_id.startswith("digits-") else "woods2019-cifar10-"
    ready = {info.model_id for info in model_infos() if info.available_offline}
    for prefix in (family, "woods2019-cifar10-", "digits-"):
        standard, robust = f"{prefix}standard", f"{prefix}robust"
        if standard in ready and robust in ready:
            return standard, robust
    return model_id, model_id
