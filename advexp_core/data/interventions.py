"""The two interventions of a shortcut audit (docs/audit.md): remove a marked artifact by inpainting,
and paste an artifact cut from one image onto others.

- *remove* (`remove_artifact`): scikit-image's biharmonic inpainting, which solves ∇⁴u = 0 inside the
  mask with the image as boundary condition: a smooth fill that leaves every unmarked pixel exactly as
  it was, deterministic and fast (~0.05 s for a 224 px image); no texture is invented, so no new edge
  or pattern enters the image;
- *add* (`paste_artifact`): at the place it has in its own image, or flush against a chosen border.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from skimage.restoration import inpaint_biharmonic
from torch import Tensor

INPAINTING = "biharmonic"  # scikit-image's inpaint_biharmonic (see the module docstring)
WHERE = ("same", "border")
BORDERS = ("bottom", "top", "left", "right")


class AuditError(ValueError):
    """Input an audit cannot measure; ``setting`` names the one at fault ("images", "masks",
    "labels", "artifact", "model") so a caller can point at its own name for it."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(message)


@dataclass(frozen=True)
class Artifact:
    """An artifact to paste: the image it is cut from and its mask.

    Shapes: image (3, H, W) in [0, 1]; mask (H, W) bool.
    """

    image: Tensor
    mask: Tensor


def size_text(t: Tensor) -> str:
    """ "W×H" of an image or mask."""
    return f"{t.shape[-1]}×{t.shape[-2]}"


def remove_artifact(images: Tensor, masks: Tensor) -> Tensor:
    """Fill each image's masked pixels by biharmonic inpainting from the rest (`INPAINTING`).

    Unmasked pixels are returned exactly as given; an all-False mask returns its image unchanged.

    Args:
        images: in [0, 1].
        masks: True where the artifact is.

    Raises:
        AuditError: shapes that do not match, or a mask that covers every pixel.

    Shapes: images (N, 3, H, W), masks (N, H, W) bool -> (N, 3, H, W) on the images' device.
    """
    if images.ndim != 4 or tuple(masks.shape) != (images.shape[0], *images.shape[2:]):
        raise AuditError("masks", f"masks {tuple(masks.shape)} do not match images {tuple(images.shape)}.")
    out = images.detach().clone()
    for k in range(images.shape[0]):
        mask = masks[k].bool().cpu().numpy()
        if not mask.any():
            continue
        if mask.all():
            raise AuditError("masks", f"mask {k} covers the whole image: there is nothing to inpaint from.")
        array = images[k].detach().double().cpu().permute(1, 2, 0).numpy()
        filled = inpaint_biharmonic(array, mask, channel_axis=-1)
        fill = torch.from_numpy(np.clip(filled, 0.0, 1.0)).permute(2, 0, 1).to(out)
        keep = torch.from_numpy(mask).to(out.device)
        out[k] = torch.where(keep, fill, out[k])  # exactly the input outside the mask
    return out


def _bbox(mask: Tensor) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the mask's True pixels."""
    rows = torch.nonzero(mask.any(1)).flatten()
    cols = torch.nonzero(mask.any(0)).flatten()
    top, left = int(rows[0]), int(cols[0])
    return top, left, int(rows[-1]) - top + 1, int(cols[-1]) - left + 1


def paste_artifact(
    images: Tensor, artifact: Artifact, *, where: str = "same", border: str = "bottom"
) -> tuple[Tensor, Tensor]:
    """Paste the artifact's masked pixels onto every image.

    "same": at the place it has in its own image (which must have the images' size). "border": its
    bounding box, turned a quarter so that its long side runs along the chosen edge, flush against
    that edge and centred along it.

    Raises:
        AuditError ("artifact"): an empty mask, another size with "same", a box larger than the image.

    Shapes: images (N, 3, H, W) -> (pasted (N, 3, H, W), masks (N, H, W) bool where it now lies).
    """
    mask = artifact.mask.bool().cpu()
    if artifact.image.ndim != 3 or tuple(mask.shape) != tuple(artifact.image.shape[-2:]):
        raise AuditError("artifact", "the artifact's mask must have its image's size.")
    if not mask.any():
        raise AuditError("artifact", "the artifact's mask marks no pixel: there is nothing to paste.")
    n, _, h, w = images.shape
    source = artifact.image.detach().cpu().to(images.dtype)
    if where == "same":
        if tuple(mask.shape) != (h, w):
            raise AuditError(
                "artifact",
                f"the artifact's image is {size_text(mask)} but the images are {w}×{h}; paste along a border instead.",
            )
        placed, patch = mask, source
    elif where == "border":
        placed, patch = _border_placement(source, mask, (h, w), border)
    else:
        raise AuditError("artifact", f"where must be one of {', '.join(WHERE)}, got {where!r}.")
    placed = placed.to(images.device)
    out = torch.where(placed, patch.to(images.device), images.detach())
    return out, placed.expand(n, h, w).clone()


def _border_placement(
    source: Tensor, mask: Tensor, size: tuple[int, int], border: str
) -> tuple[Tensor, Tensor]:
    """The artifact's box moved flush against ``border`` of an image of ``size``: (mask, pixels)."""
    top, left, bh, bw = _bbox(mask)
    pixels, box = source[:, top : top + bh, left : left + bw], mask[top : top + bh, left : left + bw]
    along_rows = border in ("left", "right")  # the long side should run down the image
    if (bh < bw) == along_rows and bh != bw:
        pixels, box = pixels.rot90(1, (1, 2)), box.rot90(1, (0, 1))
    bh, bw = box.shape
    h, w = size
    if bh > h or bw > w:
        raise AuditError("artifact", f"the artifact ({bw}×{bh} px) does not fit in a {w}×{h} image.")
    y = {"top": 0, "bottom": h - bh}.get(border, (h - bh) // 2)
    x = {"left": 0, "right": w - bw}.get(border, (w - bw) // 2)
    placed = torch.zeros(h, w, dtype=torch.bool)
    placed[y : y + bh, x : x + bw] = box
    patch = torch.zeros(source.shape[0], h, w, dtype=source.dtype)
    patch[:, y : y + bh, x : x + bw] = pixels
    return placed, patch


__all__ = ["BORDERS", "INPAINTING", "WHERE", "Artifact", "AuditError", "paste_artifact", "remove_artifact"]
