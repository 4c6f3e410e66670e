"""Forward-only explainers: LIME over superpixels and occlusion, both through captum.

docs/method.md §5. Registered in `advexp_core.methods.saliency` as "lime" and "occlusion", so
`saliency.explain(module, x, t, method="lime")` and every list of explainers offer them.

Neither needs a gradient, so they also explain models whose gradients say little (a
gradient-masked robust network, a non-differentiable pipeline). Both return the same
`SaliencyMap` (`advexp_core.methods.maps`) as the gradient methods: one non-negative (H, W) map per image at the input
resolution, where larger means more positive evidence for the target class.

* LIME (Ribeiro, Singh & Guestrin 2016): switch random subsets of SLIC superpixels to black,
  fit a weighted linear model (ridge) from "which superpixels were on" to the target
  logit, and paint each superpixel with its weight.
* Occlusion (Zeiler & Fergus 2014): slide a black square over the image and record how much
  the target logit drops.

The module is only called forward, under `torch.no_grad`, in batches of `batch_size` images;
it is never modified. Every forward pass is counted (`extra["forward_passes"]`,
`extra["forward_images"]`) so a benchmark can compare against bare forward passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from captum._utils.models.linear_model import SkLearnRidge
from captum.attr import Lime, Occlusion
from captum.attr._core.lime import get_exp_kernel_similarity_function
from skimage.segmentation import slic
from torch import Tensor, nn

from advexp_core.base.runtime import device_of
from advexp_core.methods.maps import SaliencyMap, as_targets

# Sized to stay within seconds per 224-px image on a laptop CPU (`python -m bench.bench_perturbation`
# times it against the bare forward passes; figures in bench/README.md).
LIME_SAMPLES = 128
LIME_SEGMENTS = 32
# LIME's reference implementation weights samples by an exponential kernel of width 0.25 on a
# cosine distance (of the on/off vectors; captum's is between the images, of similar size for
# black-outs). captum's default width 1.0 would weight every sample almost equally.
_KERNEL_WIDTH = 0.25
# Ridge with alpha 1, as LIME's reference implementation for images: unlike captum's default
# Lasso (alpha 0.01 in logit units), it does not zero every weight of a model whose logits
# move little, e.g. a randomised network in the sanity checks.
_RIDGE_ALPHA = 1.0
BATCH_SIZE = 32

ForwardCounts = dict[str, int]


def _check_images(images: Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"images must have shape (N, C, H, W), got {tuple(images.shape)}")


def counting_forward(module: nn.Module) -> tuple[Callable[[Tensor], Tensor], ForwardCounts]:
    """A gradient-free forward function for captum, and the counts it keeps.

    Returns:
        (forward, counts): `forward(x)` runs `module(x)` under `torch.no_grad`; `counts`
        holds "forward_passes" (calls) and "forward_images" (images through the module).
    """
    counts: ForwardCounts = {"forward_passes": 0, "forward_images": 0}

    def forward(x: Tensor) -> Tensor:
        counts["forward_passes"] += 1
        counts["forward_images"] += int(x.shape[0])
        with torch.no_grad():
            return module(x)

    return forward, counts


def _grid(height: int, width: int, n_segments: int) -> np.ndarray:
    """A regular grid of about `n_segments` cells, labelled row-major from 0. Shapes: (H, W)."""
    side = max(1, round(n_segments**0.5))
    rows = np.arange(height) * min(side, height) // height
    cols = np.arange(width) * min(side, width) // width
    return rows[:, None] * min(side, width) + cols[None, :]


def superpixels(image: Tensor, *, n_segments: int = LIME_SEGMENTS) -> Tensor:
    """SLIC superpixels (Achanta et al. 2012, scikit-image) of one image, labelled 0..K-1.

    SLIC is deterministic: the same image always gives the same segments. On texture that SLIC
    cannot split (pixel noise collapses into one connected segment) a regular grid of about
    `n_segments` cells is used instead, so LIME always has parts to switch off.

    Args:
        image: an image in [0, 1] with 1 or 3 channels.
        n_segments: the approximate number of superpixels.

    Returns:
        int64 labels on the image's device, consecutive from 0.

    Shapes: (C, H, W) -> (H, W)
    """
    if n_segments < 1:
        raise ValueError(f"n_segments must be at least 1, got {n_segments}")
    arr = image.detach().float().clamp(0, 1).cpu().numpy()
    if arr.shape[0] == 1:
        labels = slic(arr[0], n_segments=n_segments, start_label=0, channel_axis=None)
    else:
        labels = slic(np.moveaxis(arr, 0, -1), n_segments=n_segments, start_label=0)
    _, dense = np.unique(labels, return_inverse=True)  # SLIC may skip labels; captum needs 0..K-1
    dense = dense.reshape(labels.shape)
    if dense.max() + 1 < max(2, n_segments // 4) <= n_segments:
        dense = _grid(dense.shape[0], dense.shape[1], n_segments)
    return torch.from_numpy(dense.astype(np.int64)).to(image.device)


def _seeded_perturb(generator: torch.Generator) -> Callable[..., Tensor]:
    """captum's default LIME sampling (each superpixel on with probability 1/2), but seeded."""

    def perturb(original: Tensor, **kwargs: Any) -> Tensor:
        n = int(kwargs["num_interp_features"])
        on = torch.rand((1, n), generator=generator) < 0.5
        return on.long().to(original.device)

    return perturb


def lime(
    module: nn.Module,
    images: Tensor,
    targets: Tensor | int | Sequence[int],
    *,
    n_samples: int = LIME_SAMPLES,
    n_segments: int = LIME_SEGMENTS,
    generator_seed: int = 0,
    batch_size: int = BATCH_SIZE,
) -> SaliencyMap:
    """LIME (Ribeiro et al. 2016) over SLIC superpixels, via captum's `Lime`, positive part.

    Each image gets its own superpixels and its own surrogate: the target logit of `n_samples`
    random on/off patterns (off = black), fitted by ridge regression with every sample weighted
    by an exponential kernel on its cosine distance to the image. The map paints every
    superpixel with its weight, clipped at 0 (only evidence *for* the target is shown).

    Args:
        module: the network (images in [0, 1] -> logits); only called forward.
        images: images in [0, 1].
        targets: class index to explain, per image or one for all.
        n_samples: perturbed images per explained image (forward passes = N * n_samples).
        n_segments: approximate superpixels per image.
        generator_seed: seed of the on/off patterns; image i uses `generator_seed + i`.
        batch_size: perturbed images per forward pass.

    Returns:
        SaliencyMap with method "lime"; extra: "n_samples", "n_segments" (requested),
        "segments" (N,) actual superpixel counts, "weights" (list of (K_i,) tensors),
        "baseline" "black", "forward_passes", "forward_images".

    Shapes: images (N, C, H, W) -> maps (N, H, W)
    """
    _check_images(images)
    if n_samples < 1 or batch_size < 1:
        raise ValueError(f"n_samples and batch_size must be at least 1, got {n_samples}, {batch_size}")
    device = device_of(module, images.device)
    x = images.detach().to(device).float()
    t = as_targets(targets, x.shape[0], device)
    forward, counts = counting_forward(module)
    maps, weights, segments = [], [], []
    for i in range(x.shape[0]):
        mask = superpixels(x[i], n_segments=n_segments)
        explainer = Lime(
            forward,
            interpretable_model=SkLearnRidge(alpha=_RIDGE_ALPHA),
            similarity_func=get_exp_kernel_similarity_function("cosine", kernel_width=_KERNEL_WIDTH),
            perturb_func=_seeded_perturb(torch.Generator().manual_seed(generator_seed + i)),
        )
        coefs = explainer.attribute(
            x[i : i + 1], target=int(t[i]), feature_mask=mask[None, None].expand_as(x[i : i + 1]),
            n_samples=n_samples, perturbations_per_eval=batch_size, return_input_shape=False,
        )  # fmt: skip
        w = coefs.detach().reshape(-1).float().to(device)
        maps.append(w[mask].clamp_min(0))
        weights.append(w)
        segments.append(int(w.numel()))
    extra: dict[str, Any] = {
        "n_samples": n_samples, "n_segments": n_segments, "segments": torch.tensor(segments),
        "weights": weights, "baseline": "black", **counts,
    }  # fmt: skip
    return SaliencyMap(torch.stack(maps), "lime", t, extra)


def occlusion_window(height: int, width: int) -> int:
    """The default occlusion square side, min(H, W) / 7 px (32 px on a 224-px image).

    With the default stride of half the window that is 13 x 13 = 169 positions at 224 px.
    """
    return max(1, round(min(height, width) / 7))


def occlusion(
    module: nn.Module,
    images: Tensor,
    targets: Tensor | int | Sequence[int],
    *,
    window: int | None = None,
    stride: int | None = None,
    batch_size: int = BATCH_SIZE,
) -> SaliencyMap:
    """Occlusion (Zeiler & Fergus 2014) via captum's `Occlusion`: logit drop under a black square.

    The square covers all channels; each pixel's attribution is the mean logit drop over the
    window positions that cover it (captum's averaging). The map is the positive part averaged
    over channels: pixels whose hiding lowers the target logit.

    Args:
        module: the network (images in [0, 1] -> logits); only called forward.
        images: images in [0, 1].
        targets: class index to explain, per image or one for all.
        window: side of the square in pixels; default `occlusion_window` (min(H, W) / 7).
        stride: step between positions in pixels; default half the window.
        batch_size: images per forward pass (at least one position of every image).

    Returns:
        SaliencyMap with method "occlusion"; extra: "window", "stride", "baseline" "black",
        "forward_passes", "forward_images".

    Shapes: images (N, C, H, W) -> maps (N, H, W)
    """
    _check_images(images)
    n, c, h, w = images.shape
    window = occlusion_window(h, w) if window is None else window
    stride = max(1, window // 2) if stride is None else stride
    if not (1 <= window <= min(h, w)) or stride < 1 or batch_size < 1:
        raise ValueError(
            f"need 1 <= window <= {min(h, w)}, stride >= 1 and batch_size >= 1; "
            f"got window={window}, stride={stride}, batch_size={batch_size}"
        )
    device = device_of(module, images.device)
    x = images.detach().to(device).float()
    t = as_targets(targets, n, device)
    forward, counts = counting_forward(module)
    attr = Occlusion(forward).attribute(
        x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
        baselines=0.0, target=t, perturbations_per_eval=max(1, batch_size // n),
    )  # fmt: skip
    maps = attr.detach().clamp_min(0).mean(dim=1)
    extra: dict[str, Any] = {"window": window, "stride": stride, "baseline": "black", **counts}
    return SaliencyMap(maps, "occlusion", t, extra)
