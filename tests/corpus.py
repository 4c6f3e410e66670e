"""Odd and hostile inputs generated on the fly (no committed binaries), shared by the core and app tests.

``image_corpus()`` maps a name to (bytes, expectation) where the expectation is ``"ok"`` (must
decode to a valid image) or ``"refuse"`` (must raise ImageError). ``checkpoint_corpus(folder,
marker)`` writes checkpoint files whose loading must be refused (and whose payload, if any, would
create ``marker``).
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin

RNG = np.random.default_rng(7)
PHOTO = RNG.integers(0, 256, size=(48, 64, 3), dtype=np.uint8)


def save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def raw_png(width: int, height: int, depth: int, color: int, rows: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0)
    body = png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def rgb48_png() -> bytes:
    pixels = (RNG.integers(0, 65536, size=(8, 8, 3))).astype(">u2")
    rows = b"".join(b"\x00" + pixels[y].tobytes() for y in range(8))
    return raw_png(8, 8, 16, 2, rows)


def jpeg_bomb() -> bytes:
    data = bytearray(save(Image.new("RGB", (16, 16)), "JPEG"))
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 65000, 65000)
    return bytes(data)


def bmp_bomb() -> bytes:
    data = bytearray(save(Image.new("RGB", (4, 4)), "BMP"))
    data[18:26] = struct.pack("<ii", 60000, 60000)
    return bytes(data)


def gif_bomb() -> bytes:
    data = bytearray(save(Image.new("P", (4, 4)), "GIF"))
    data[6:10] = struct.pack("<HH", 65535, 65535)
    return bytes(data)


def exif_jpeg(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return save(Image.fromarray(PHOTO), "JPEG", exif=exif.tobytes())


def huge_text_png() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("comment", "x" * 3_000_000, zip=True)
    return save(Image.fromarray(PHOTO), "PNG", pnginfo=info)


def animated(fmt: str) -> bytes:
    frames = [Image.new("RGB", (12, 12), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    return save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50)


def palette_with_transparency() -> bytes:
    pal = Image.fromarray(PHOTO).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    return save(pal, "PNG", transparency=0)


def _ok() -> dict[str, Callable[[], bytes]]:
    photo = Image.fromarray(PHOTO)
    cases: dict[str, Callable[[], bytes]] = {
        "png": lambda: save(photo, "PNG"),
        "jpeg": lambda: save(photo, "JPEG"),
        "jpeg-progressive": lambda: save(photo, "JPEG", progressive=True),
        "webp": lambda: save(photo, "WEBP"),
        "bmp": lambda: save(photo, "BMP"),
        "tiff": lambda: save(photo, "TIFF"),
        "gif": lambda: save(photo.convert("P"), "GIF"),
        "1x1": lambda: save(Image.new("RGB", (1, 1), (9, 9, 9)), "PNG"),
        "20000x20": lambda: save(Image.new("RGB", (20000, 20), (200, 10, 10)), "PNG"),
        "20x20000": lambda: save(Image.new("L", (20, 20000), 77), "PNG"),
        "16bit-gray": lambda: save(
            Image.fromarray(np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000), "PNG"
        ),
        "16bit-rgb": rgb48_png,
        "cmyk-jpeg": lambda: save(photo.convert("CMYK"), "JPEG"),
        "cmyk-tiff": lambda: save(photo.convert("CMYK"), "TIFF"),
        "palette-transparency": palette_with_transparency,
        "rgba": lambda: save(photo.convert("RGBA"), "PNG"),
        "la": lambda: save(photo.convert("LA"), "PNG"),
        "animated-gif": lambda: animated("GIF"),
        "animated-webp": lambda: animated("WEBP"),
    }
    for orientation in range(1, 9):
        cases[f"exif-orientation-{orientation}"] = lambda o=orientation: exif_jpeg(o)
    return cases


def _refuse() -> dict[str, Callable[[], bytes]]:
    png, jpeg = save(Image.fromarray(PHOTO), "PNG"), save(Image.fromarray(PHOTO), "JPEG")
    gif, webp = save(Image.fromarray(PHOTO).convert("P"), "GIF"), save(Image.fromarray(PHOTO), "WEBP")
    cases: dict[str, Callable[[], bytes]] = {
        "zero-bytes": lambda: b"",
        "text-named-png": lambda: b"just some text, saved as photo.png\n",
        "svg": lambda: b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>',
        "wrong-magic-png": lambda: b"\x89PNX" + png[4:],
        "wrong-magic-jpeg": lambda: b"\xff\xd9" + jpeg[2:],
        "png-bomb": lambda: raw_png(60000, 60000, 8, 0, b"\0" * 10),
        "jpeg-bomb": jpeg_bomb,
        "bmp-bomb": bmp_bomb,
        "gif-bomb": gif_bomb,
        "ppm": lambda: save(Image.fromarray(PHOTO), "PPM"),
        "ico": lambda: save(Image.fromarray(PHOTO), "ICO"),
        "pdf": lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n",
        "zip": lambda: b"PK\x05\x06" + bytes(18),
        "huge-text-chunk": huge_text_png,
        "random-bytes": lambda: RNG.integers(0, 256, 4096, dtype=np.uint8).tobytes(),
    }
    for frac in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99):
        cases[f"png-cut-{frac}"] = lambda f=frac: png[: int(len(png) * f)]
        cases[f"jpeg-cut-{frac}"] = lambda f=frac: jpeg[: int(len(jpeg) * f)]
    for frac in (0.1, 0.5, 0.9):
        cases[f"gif-cut-{frac}"] = lambda f=frac: gif[: int(len(gif) * f)]
        cases[f"webp-cut-{frac}"] = lambda f=frac: webp[: int(len(webp) * f)]
    return cases


def image_corpus() -> dict[str, tuple[bytes, str]]:
    """Every image case -> (bytes, "ok" | "refuse")."""
    corpus = {name: (make(), "ok") for name, make in _ok().items()}
    corpus.update({name: (make(), "refuse") for name, make in _refuse().items()})
    return corpus


class _Exec:
    """Unpickling this runs a shell command (the classic hostile pickle)."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return (os.system, (self.command,))


class _Eval:
    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (eval, (self.code,))


def checkpoint_corpus(folder: Path, marker: Path) -> dict[str, Path]:
    """Write hostile or broken checkpoint files into ``folder``; none may load, none may create ``marker``."""
    import torch
    import torchvision
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    touch = f"touch {marker}"
    good = torchvision.models.resnet18(weights=None, num_classes=2).state_dict()
    files: dict[str, Path] = {}

    def write(name: str, data: bytes) -> None:
        (folder / name).write_bytes(data)
        files[name] = folder / name

    buf = io.BytesIO()
    torch.save({"fc.weight": torch.zeros(2, 512), "x": _Exec(touch)}, buf)
    write("torch-save-os-system.pt", buf.getvalue())
    write("raw-pickle-os-system.pt", pickle.dumps({"w": _Exec(touch)}, protocol=2))
    write("raw-pickle-eval.pt", pickle.dumps(_Eval(f"__import__('os').system({touch!r})")))
    write("pickle-protocol-5.pt", pickle.dumps([_Exec(touch)], protocol=5))
    buf = io.BytesIO()
    torch.save(good, buf)
    whole = buf.getvalue()
    for frac in (0.01, 0.3, 0.6, 0.95):
        write(f"truncated-{frac}.pt", whole[: int(len(whole) * frac)])
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("archive/data.pkl", b"\0" * 50_000_000)
    write("zip-bomb.pt", bomb.getvalue())
    write("empty.pt", b"")
    # Found by tests/core/test_fuzz.py: a one-byte pickle and a zip whose end record is damaged.
    write("fuzz-one-byte.pt", b"r")
    small = io.BytesIO()
    torch.save({"w": torch.arange(6.0).reshape(2, 3), "b": torch.zeros(2)}, small)
    damaged = bytearray(small.getvalue())
    damaged[3620 % len(damaged)] = 1
    write("fuzz-bad-end-record.pt", bytes(damaged))
    damaged = bytearray(small.getvalue())
    damaged[994361 % len(damaged)] = 64  # zipfile: NotImplementedError("zip file version 6.4")
    write("fuzz-zip-version.pt", bytes(damaged))
    write("text.pt", b"not a checkpoint\n")
    write("json.safetensors", json.dumps({"a": 1}).encode())
    header = json.dumps(
        {"fc.weight": {"dtype": "F32", "shape": [2, 512], "data_offsets": [0, 10**12]}}
    ).encode()
    write("lying-offsets.safetensors", struct.pack("<Q", len(header)) + header + bytes(64))
    write("lying-header-length.safetensors", struct.pack("<Q", 10**15) + b"{}")
    header = json.dumps(
        {"fc.weight": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 16]}}
    ).encode()
    write("shape-mismatch.safetensors", struct.pack("<Q", len(header)) + header + bytes(16))
    nan = dict(good)
    nan["fc.weight"] = torch.full_like(good["fc.weight"], float("nan"))
    save_file(nan, folder / "nan.safetensors")
    files["nan.safetensors"] = folder / "nan.safetensors"
    wrong = torchvision.models.mobilenet_v3_small(weights=None, num_classes=2).state_dict()
    torch.save(wrong, folder / "wrong-architecture.pt")
    files["wrong-architecture.pt"] = folder / "wrong-architecture.pt"
    torch.save([torch.zeros(3)], folder / "a-list.pt")
    files["a-list.pt"] = folder / "a-list.pt"
    torch.save({"epoch": 3, "note": "no tensors"}, folder / "no-tensors.pt")
    files["no-tensors.pt"] = folder / "no-tensors.pt"
    return files
