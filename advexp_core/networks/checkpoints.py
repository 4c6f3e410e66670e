"""Safe checkpoint loading and saving, sha256, and download-once-into-a-cache.

Nothing here unpickles arbitrary objects: ``.pt`` files load with ``torch.load(weights_only=True)``
(tensors, dicts, lists and primitives only) and ``.safetensors`` through safetensors. Files are
written to a temporary name and renamed only when complete, so an interrupted write or a download
whose sha256 does not match never leaves a broken file behind.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
import urllib.request
import warnings
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

MAX_CHECKPOINT_BYTES = 1024 * 1024 * 1024


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with a message that says why and what to do."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a saved checkpoint is an ordinary file
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_checkpoint(path: str | Path, payload: Mapping[str, Any]) -> None:
    """Write ``payload`` (tensors, dicts, lists, str, int, float, bool) atomically with torch.save."""
    _atomic_write(Path(path), lambda tmp: torch.save(dict(payload), tmp))


def _woods_placeholder() -> Callable[..., None]:
    """A harmless stand-in for the function reference ``__main__.cifar10_preprocess`` in the paper's files."""

    def cifar10_preprocess(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("placeholder for the reference code's preprocessing function; never called")

    cifar10_preprocess.__module__ = "__main__"
    cifar10_preprocess.__qualname__ = "cifar10_preprocess"
    return cifar10_preprocess


def load_checkpoint(path: str | Path, *, allow_woods2019: bool = False) -> dict[str, Any]:
    """Load a ``.pt`` checkpoint without running any code from it.

    Args:
        path: the file.
        allow_woods2019: also allow-list the placeholder ``__main__.cifar10_preprocess`` that the
            paper's published files reference (a function name, never called).

    Returns:
        The stored object, which must be a dict.

    Raises:
        CheckpointError: missing, too large, truncated, not a checkpoint, or containing objects other
            than tensors and plain data (e.g. a pickle that would run code).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint file not found: {path}")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{path.name} is larger than {MAX_CHECKPOINT_BYTES >> 20} MB; refusing to load it."
        )
    _check_archive(path)
    extra: list[Callable[..., Any] | tuple[Callable[..., Any], str]] = (
        [_woods_placeholder()] if allow_woods2019 else []
    )
    try:
        with torch.serialization.safe_globals(extra), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about odd pickle protocols it then refuses
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=False)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path.name} contains Python objects other than weights (it could run code when opened), "
            "so it was refused. Save only the state_dict: torch.save(model.state_dict(), 'weights.pt')."
        ) from exc
    except Exception as exc:  # torch raises many types on damaged files; each means "unreadable"
        raise CheckpointError(
            f"{path.name} is not a readable PyTorch checkpoint (it may be truncated or corrupt): {_short(exc)}"
        ) from exc
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path.name} holds a {type(obj).__name__}, not a dict of weights.")
    return obj


def _check_archive(path: Path) -> None:
    """Refuse zip bombs before torch reads anything: torch.save writes stored (uncompressed) entries."""
    try:
        if not zipfile.is_zipfile(path):
            return
        with zipfile.ZipFile(path) as archive:
            infos = archive.infolist()
    except Exception as exc:  # zipfile raises BadZipFile, NotImplementedError, … on damaged archives
        raise CheckpointError(f"{path.name} is a damaged archive: {_short(exc)}") from exc
    if any(info.compress_type != zipfile.ZIP_STORED for info in infos):
        raise CheckpointError(f"{path.name} has compressed entries, so torch.save did not write it; refused.")
    if sum(info.file_size for info in infos) > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path.name} unpacks to more than {MAX_CHECKPOINT_BYTES >> 20} MB; refused.")


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Load a bare state_dict from ``.safetensors`` or ``.pt``/``.pth`` (a dict of tensors, or {'state_dict': …})."""
    path = Path(path)
    if path.suffix == ".safetensors":
        state = _load_safetensors(path)
    else:
        obj = load_checkpoint(path)
        inner = obj.get("state_dict", obj.get("model_state_dict", obj))
        state = inner if isinstance(inner, dict) else {}
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if not tensors:
        raise CheckpointError(
            f"{path.name} holds no tensors; expected a state_dict (parameter name -> tensor)."
        )
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(
            f"{path.name} has NaN or infinite values in {len(bad)} tensor(s), e.g. {bad[0]}."
        )
    return tensors


def load_weights_file(path: str | Path) -> dict[str, Any]:
    """What a weights file holds, unwrapped by nobody yet: ``.safetensors`` tensors or a ``.pt``/``.pth`` dict.

    Raises:
        CheckpointError: as `load_checkpoint` (missing, too large, unreadable, code inside) or an
            invalid ``.safetensors`` file (its header does not describe its bytes).
    """
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        if not path.is_file():
            raise CheckpointError(f"Weights file not found: {path}")
        return dict(_load_safetensors(path))
    return load_checkpoint(path)


def check_finite(tensors: Mapping[str, Tensor], name: str) -> None:
    """Refuse weights with NaN or infinite values (a diverged run), naming the first such tensor."""
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise CheckpointError(f"{name} has NaN or infinite values in {len(bad)} tensor(s), e.g. {bad[0]}.")


def _load_safetensors(path: Path) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(
            f"{path.name} is larger than {MAX_CHECKPOINT_BYTES >> 20} MB; refusing to load it."
        )
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, Exception) as exc:  # any failure of the parser means "not valid"
        raise CheckpointError(f"{path.name} is not a valid .safetensors file: {_short(exc)}") from exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def download_to_cache(url: str, sha256: str, dest: str | Path, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` once; the file appears only after its sha256 matched.

    Raises:
        CheckpointError: no network, or the downloaded bytes do not match ``sha256``.
    """
    dest = Path(dest)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest

    def fetch(tmp: Path) -> None:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as fh:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    fh.write(chunk)
        except OSError as exc:
            raise CheckpointError(f"Could not download {url}: {_short(exc)}") from exc
        got = sha256_file(tmp)
        if got != sha256:
            raise CheckpointError(
                f"Download of {url} is corrupt (sha256 {got[:12]}…, expected {sha256[:12]}…)."
            )

    _atomic_write(dest, fetch)
    return dest


def cache_dir() -> Path:
    """Where downloaded weights are kept: $ADVEXP_CACHE_DIR, else ~/.cache/advexp."""
    root = os.environ.get("ADVEXP_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "advexp")
    return Path(root)
