"""Does an adversarial explanation draw the shortcut? A ruler probe read on x+δ, δ's energy in the
ruler band, and a causal split of δ into band and centre (docs/method.md, shortcut probe).

On the generated lesions (``groundtruth.generate_lesions``) the shortcut's pixels are known: every
ruler lies in the outer ``RULER_WIDTH`` px (the *band*). For a network and ruler-free benign images,
the adversarial explanation toward "malignant" (docs/method.md §2) gives δ; three readings of δ:

- a *ruler probe*, a small CNN trained apart from every network on fresh twins (the same image with
  and without its ruler, so the ruler is the only cue), reads P(ruler) on x and on x+δ. It sees the
  image through a fixed Gaussian blur and is trained under label-independent white noise, smooth
  noise and yellow tints, so that energy or colour alone should not move it (``validate_probe``
  checks this on fresh images, and each network's δ is also read with its positions scrambled);
- δ's *band energy ratio*: its share of energy in the band over the band's share of the area
  (1 for δ spread evenly), and the same for the single edge strip that holds most;
- a *causal split*: the network's decision on x+δ·band and on x+δ·(1−band).

Each reading is also made on a *null* δ: δ with its Fourier phases shifted at random (the same
amplitude spectrum in every channel, hence the same RMS, frequencies and colour mix; its positions
scrambled). A reading that δ earns and its null does not comes from where δ put its energy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advexp_core.base.jsonsafe import json_number
from advexp_core.base.runtime import device_of
from advexp_core.data.datasets import load_lesions
from advexp_core.data.groundtruth import LESION_SIZE, RULER_WIDTH, UNBIASED_RULER_RATES, generate_lesions
from advexp_core.evaluation.reliance import check_lesions_model
from advexp_core.experiments.configs import ExplanationConfig
from advexp_core.methods.explanations import adversarial_explanation
from advexp_core.networks.registry import LoadedModel

RULER_YELLOW = (0.98, 0.85, 0.20)  # the ruler's strip colour (groundtruth._ruler)
BENIGN, MALIGNANT = 0, 1
STUDY_SPLIT = "test"  # the images measured: its ruler-free twin, benign ones only


@dataclass(frozen=True)
class ProbeConfig:
    """How the ruler probe is trained.

    Attributes:
        n_pairs: fresh lesion images, each used with and without its ruler (2·n_pairs examples).
        epochs, batch_size, lr: Adam on the binary cross-entropy.
        width: channels of the first convolution (then 2·width, 2·width).
        blur_sigma: px, the fixed Gaussian blur the probe reads through.
        noise_rms: largest RMS of the training noise ([0,1] pixel units; the AE's ρ is 0.1).
        tint: largest opacity of the label-independent yellow tints.
        seed: every draw (images, initialisation, batches, noise).
    """

    n_pairs: int = 2000
    epochs: int = 4
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 16
    blur_sigma: float = 1.5
    noise_rms: float = 0.2
    tint: float = 0.5
    seed: int = 3001

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class RulerProbe(nn.Module):
    """Images in [0, 1] -> the logit of P(ruler): a fixed Gaussian blur, three conv-ReLU-maxpool
    stages, a global max (a ruler anywhere) and a linear read-out.

    Shapes: (N, 3, H, W) -> (N,).
    """

    def __init__(self, width: int = 16, blur_sigma: float = 1.5) -> None:
        super().__init__()
        radius = max(1, math.ceil(2 * blur_sigma))
        axis = torch.arange(-radius, radius + 1, dtype=torch.float32)
        kernel = torch.exp(-(axis**2) / (2 * blur_sigma**2))
        kernel = torch.outer(kernel, kernel) / kernel.sum() ** 2
        self.pad = radius
        self.blur: Tensor
        self.register_buffer("blur", kernel.expand(3, 1, -1, -1).clone())
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )  # fmt: skip
        self.readout = nn.Linear(2 * w, 1)

    def forward(self, images: Tensor) -> Tensor:
        smooth = F.conv2d(F.pad(images, (self.pad,) * 4, mode="replicate"), self.blur, groups=3)
        return self.readout(self.features(smooth - 0.5).amax(dim=(2, 3))).squeeze(1)


def band_mask(size: int = LESION_SIZE, width: int = RULER_WIDTH) -> Tensor:
    """The outer ``width`` px of a square image, where every ruler lies. Shapes: -> (size, size) bool."""
    band = torch.ones(size, size, dtype=torch.bool)
    band[width : size - width, width : size - width] = False
    return band


def edge_masks(size: int = LESION_SIZE, width: int = RULER_WIDTH) -> Tensor:
    """The four strips a ruler can occupy (top, bottom, left, right). Shapes: -> (4, size, size) bool."""
    masks = torch.zeros(4, size, size, dtype=torch.bool)
    masks[0, :width], masks[1, size - width :] = True, True
    masks[2, :, :width], masks[3, :, size - width :] = True, True
    return masks


def ruler_probability(probe: nn.Module, images: Tensor, *, batch_size: int = 256) -> Tensor:
    """P(ruler) per image, in batches on the probe's device. Shapes: (N, 3, H, W) -> (N,) on the CPU."""
    device = device_of(probe)
    with torch.no_grad():
        parts = [
            torch.sigmoid(probe(images[i : i + batch_size].to(device)).float()).cpu()
            for i in range(0, len(images), batch_size)
        ]
    return torch.cat(parts) if parts else torch.zeros(0)


def ruler_twins(n_pairs: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """``n_pairs`` fresh lesions with the ruler each would have had, and the same without it.

    Shapes: -> (n, 3, 64, 64), (n, 3, 64, 64).
    """
    state = generator.get_state()
    forced = generate_lesions(
        n_pairs, generator=generator, ruler_rates=UNBIASED_RULER_RATES, force_ruler=True
    )
    generator.set_state(state)  # the same draws again: the exact twin
    clean = generate_lesions(n_pairs, generator=generator, ruler_rates=UNBIASED_RULER_RATES, shortcut=False)
    return forced.images, clean.images


def _smooth(n: int, cells: int, generator: torch.Generator) -> Tensor:
    """Unit-RMS noise varying over about 64/cells px. Shapes: -> (n, 1, 64, 64)."""
    coarse = torch.randn(n, 1, cells, cells, generator=generator)
    field = F.interpolate(coarse, size=(LESION_SIZE, LESION_SIZE), mode="bicubic", align_corners=False)
    return field / field.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-6)


def perturb_for_training(images: Tensor, config: ProbeConfig, generator: torch.Generator) -> Tensor:
    """Label-independent nuisances: white or smooth noise of RMS up to ``noise_rms`` and a smooth yellow
    tint of opacity up to ``tint``, each on a random third of the images; clamped to [0, 1].

    Shapes: (N, 3, 64, 64) -> (N, 3, 64, 64).
    """
    n = len(images)
    kind = torch.randint(0, 3, (n, 1, 1, 1), generator=generator)  # 0 none, 1 white, 2 smooth
    rms = config.noise_rms * torch.rand(n, 1, 1, 1, generator=generator)
    white = torch.randn(images.shape, generator=generator)
    smooth = _smooth(n, 8, generator).expand(-1, 3, -1, -1) * torch.randn(n, 3, 1, 1, generator=generator)
    smooth = smooth / smooth.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-6)
    noise = torch.where(kind == 1, white, torch.where(kind == 2, smooth, torch.zeros_like(white)))
    opacity = config.tint * torch.rand(n, 1, 1, 1, generator=generator)
    opacity = opacity * (torch.rand(n, 1, 1, 1, generator=generator) < 1 / 3)
    blob = torch.sigmoid((_smooth(n, 4, generator) - 1.0) / 0.3)
    yellow = torch.tensor(RULER_YELLOW).view(1, 3, 1, 1)
    tinted = images + opacity * blob * (yellow - images)
    return (tinted + rms * noise).clamp(0.0, 1.0)


def train_ruler_probe(config: ProbeConfig) -> RulerProbe:
    """Train a ``RulerProbe`` on fresh ruler twins (CPU; deterministic for a given config).

    Returns:
        The probe, frozen and in eval mode.
    """
    generator = torch.Generator().manual_seed(config.seed)
    forced, clean = ruler_twins(config.n_pairs, generator)
    images = torch.cat([forced, clean])
    targets = torch.cat([torch.ones(config.n_pairs), torch.zeros(config.n_pairs)])
    probe = RulerProbe(config.width, config.blur_sigma)
    with torch.no_grad():
        for m in probe.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_uniform_(m.weight, nonlinearity="relu", generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    optimiser = torch.optim.Adam(probe.parameters(), lr=config.lr)
    for _ in range(config.epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            inputs = perturb_for_training(images[batch], config, generator)
            loss = F.binary_cross_entropy_with_logits(probe(inputs), targets[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return probe.eval().requires_grad_(False)


def _rms(delta: Tensor) -> Tensor:
    """Per-image RMS. Shapes: (N, C, H, W) -> (N, 1, 1, 1)."""
    return delta.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt()


def white_like(delta: Tensor, generator: torch.Generator) -> Tensor:
    """White Gaussian noise with each image's RMS equal to δ's. Shapes: (N, C, H, W) -> same."""
    noise = torch.randn(delta.shape, generator=generator)
    return noise * _rms(delta) / _rms(noise).clamp_min(1e-12)


def phase_scrambled(delta: Tensor, generator: torch.Generator) -> Tensor:
    """δ with one random phase shift per spatial frequency, shared by the channels: the same amplitude
    spectrum per channel (so the same RMS and mean colour) and cross-channel relations, positions
    scrambled. The shifts are the phases of a real white field's spectrum, so the result stays real.
    Orientation survives: a strip along one edge becomes parallel stripes at random offsets.

    Shapes: (N, C, H, W) -> same.
    """
    n, _, h, w = delta.shape
    shift = torch.fft.fft2(torch.randn(n, 1, h, w, generator=generator, dtype=torch.float64)).angle()
    shift[..., 0, 0] = 0.0  # keep each channel's mean (a real field's DC phase is 0 or π)
    spectrum = torch.fft.fft2(delta.double()) * torch.polar(torch.ones_like(shift), shift)
    return torch.fft.ifft2(spectrum).real.to(delta.dtype)


def band_energy_ratio(delta: Tensor, mask: Tensor) -> Tensor:
    """δ's share of energy inside ``mask`` over the mask's share of the area (1: spread evenly).

    Shapes: delta (N, C, H, W), mask (H, W) or (K, H, W) -> (N,) or (N, K).
    """
    energy = delta.double().pow(2).sum(1)  # (N, H, W)
    masks = mask.view(-1, *mask.shape[-2:]).double()
    share = torch.einsum("nhw,khw->nk", energy, masks) / energy.flatten(1).sum(1, keepdim=True).clamp_min(
        1e-30
    )
    ratio = (share / masks.flatten(1).mean(1)).float()
    return ratio[:, 0] if mask.dim() == 2 else ratio


def _mean(values: Tensor) -> float | None:
    return json_number(values.float().mean()) if values.numel() else None


def _at_rms(delta: Tensor, rms: float) -> Tensor:
    """δ scaled down, per image, to RMS at most ``rms``. Shapes: (N, C, H, W) -> same."""
    return delta * (rms / _rms(delta).clamp_min(1e-12)).clamp(max=1.0)


@dataclass(frozen=True)
class ProbeValidation:
    """The probe on fresh images it never saw: P(ruler) per image under each condition.

    Attributes:
        n_pairs, seed: the fresh twins (each image with and without its ruler).
        rms: the perturbations' RMS (the AE's ρ).
        without, with_ruler: on the images without and with their ruler.
        white: without, plus white noise of RMS ``rms``.
        ruler_at_budget: without, plus the ruler's own change scaled to RMS at most ``rms`` (the
            ruler drawn as far as the AE's budget allows: what the probe reads when δ *is* a ruler).
        ruler_scrambled: the same change with its phases scrambled (its energy and colour, no strip).

    Shapes: every tensor (n_pairs,).
    """

    n_pairs: int
    seed: int
    rms: float
    without: Tensor
    with_ruler: Tensor
    white: Tensor
    ruler_at_budget: Tensor
    ruler_scrambled: Tensor

    @property
    def accuracy(self) -> float:
        """Share of the 2·n_pairs images classified right at 0.5."""
        right = int((self.with_ruler > 0.5).sum()) + int((self.without <= 0.5).sum())
        return right / max(2 * self.n_pairs, 1)

    def to_json(self) -> dict[str, Any]:
        conditions = ("without", "with_ruler", "white", "ruler_at_budget", "ruler_scrambled")
        return {
            "n_pairs": self.n_pairs, "seed": self.seed, "rms": self.rms, "accuracy": self.accuracy,
            "mean_p_ruler": {c: _mean(getattr(self, c)) for c in conditions},
            "share_above_half": {c: _mean(getattr(self, c) > 0.5) for c in conditions},
        }  # fmt: skip


def validate_probe(probe: nn.Module, *, n_pairs: int, rms: float, seed: int) -> ProbeValidation:
    """Read the probe on fresh ruler twins, clean and perturbed (see ``ProbeValidation``)."""
    generator = torch.Generator().manual_seed(seed)
    forced, clean = ruler_twins(n_pairs, generator)
    ruler = _at_rms(forced - clean, rms)

    def read(images: Tensor) -> Tensor:
        return ruler_probability(probe, images.clamp(0.0, 1.0))

    return ProbeValidation(
        n_pairs=n_pairs, seed=seed, rms=rms, without=read(clean), with_ruler=read(forced),
        white=read(clean + white_like(torch.full_like(clean, rms), generator)),  # RMS exactly ``rms``
        ruler_at_budget=read(clean + ruler), ruler_scrambled=read(clean + phase_scrambled(ruler, generator)),
    )  # fmt: skip


@dataclass(frozen=True)
class ShortcutProbeResult:
    """One network's adversarial explanations toward "malignant" of ruler-free benign images, read
    three ways, each on δ and on its phase-scrambled null (see the module docstring).

    Attributes:
        model, split, image_indices: what was measured (indices into the split's ruler-free twin).
        explanation: the AE settings (ρ, S, overshoot).
        reached: the AE spent its budget by step S/2 (docs/method.md §2).
        p_x, p_delta, p_null, p_white: P_probe(ruler) on x, x+δ, x+null δ, x+white noise of δ's RMS.
        band_ratio, band_ratio_null: energy share in the band over its area share (δ, null).
        edge_ratio, edge_ratio_null: the same for the one edge strip where the share is largest.
        malignant_x, malignant_delta: the network calls x, x+δ malignant.
        malignant_band, malignant_centre: ... on x+δ·band, x+δ·(1−band); ``_null``: with the null δ.

    Shapes: every tensor (N,) on the CPU (bool or float).
    """

    model: str
    split: str
    image_indices: tuple[int, ...]
    explanation: dict[str, float]
    reached: Tensor
    p_x: Tensor
    p_delta: Tensor
    p_null: Tensor
    p_white: Tensor
    band_ratio: Tensor
    band_ratio_null: Tensor
    edge_ratio: Tensor
    edge_ratio_null: Tensor
    malignant_x: Tensor
    malignant_delta: Tensor
    malignant_band: Tensor
    malignant_centre: Tensor
    malignant_band_null: Tensor
    malignant_centre_null: Tensor

    def to_json(self) -> dict[str, Any]:
        """Means over the images (shares for the decisions); per-image values: ``images()``."""
        return {
            "model": self.model, "split": self.split, "n_images": len(self.image_indices),
            "explanation": dict(self.explanation), "budget_reached": _mean(self.reached),
            "mean": {name: _mean(getattr(self, name)) for name in MEASURES},
            "share_p_above_half": {p: _mean(getattr(self, p) > 0.5) for p in ("p_x", "p_delta", "p_null", "p_white")},
        }  # fmt: skip

    def images(self) -> list[dict[str, Any]]:
        """One row per image: its index and every measure."""
        return [
            {"index": index, **{name: float(getattr(self, name)[i]) for name in MEASURES}}
            for i, index in enumerate(self.image_indices)
        ]


MEASURES = tuple(
    f
    for f in ShortcutProbeResult.__dataclass_fields__
    if f not in ("model", "split", "image_indices", "explanation")
)


def benign_ruler_free(n_images: int) -> tuple[Tensor, tuple[int, ...]]:
    """The first N benign images of the study split's ruler-free twin, with their indices.

    Shapes: -> (N, 3, 64, 64).
    """
    data = load_lesions(STUDY_SPLIT, shortcut=False)
    indices = torch.nonzero(data.labels == BENIGN).flatten()[:n_images]
    if len(indices) < n_images:
        raise ValueError(f"the {STUDY_SPLIT} split has {len(indices)} benign images; asked for {n_images}.")
    return data.images[indices], tuple(int(i) for i in indices)


def _malignant(module: nn.Module, images: Tensor) -> Tensor:
    with torch.no_grad():
        return module(images.clamp(0.0, 1.0).to(device_of(module))).argmax(1).cpu() == MALIGNANT


@dataclass(frozen=True)
class Explained:
    """Images with their adversarial explanation toward "malignant" on one network.

    Attributes:
        model: the network's id; image_indices: indices into the study split's ruler-free twin.
        images: x; delta: δ (unclamped, as the AE returns it); reached: budget reached by S/2.
        explanation: the AE settings (ρ, S, overshoot).

    Shapes: images, delta (N, 3, 64, 64); reached (N,) bool.
    """

    model: str
    image_indices: tuple[int, ...]
    images: Tensor
    delta: Tensor
    reached: Tensor
    explanation: dict[str, float]


def explain_toward_malignant(
    model: LoadedModel, *, n_images: int, config: ExplanationConfig | None = None
) -> Explained:
    """The AE toward "malignant" of the first N benign ruler-free images of the study split.

    Args:
        model: a lesions network (benign, malignant; 64×64). Its lock is held for the run.
        n_images: N.
        config: the AE's ρ, S and overshoot (default: the project's, ``ExplanationConfig()``).

    Shapes: -> images, delta (N, 3, 64, 64).
    """
    check_lesions_model(model)
    settings = config or ExplanationConfig()
    images, indices = benign_ruler_free(n_images)
    deltas, reached = [], []
    with model.lock:
        for image in images:
            result = adversarial_explanation(
                model.module, image, MALIGNANT, class_names=model.class_names, model_id=model.model_id,
                input_size=model.input_size, rho=settings.rho, steps=settings.steps,
                overshoot=settings.overshoot,
            ).targets[0]  # fmt: skip
            deltas.append(result.delta.float())
            reached.append(result.budget_reached_by_half)
    return Explained(
        model.model_id, indices, images, torch.stack(deltas), torch.tensor(reached),
        {"rho": settings.rho, "steps": settings.steps, "overshoot": settings.overshoot},
    )  # fmt: skip


def read_explained(
    module: nn.Module, explained: Explained, probe: nn.Module, *, seed: int
) -> ShortcutProbeResult:
    """Read each δ three ways, and its phase-scrambled null the same ways (module docstring).

    Args:
        module: the network that made δ (its decisions on x+δ·band, x+δ·(1−band)).
        explained: x and δ.
        probe: images in [0, 1] -> ruler logit (``RulerProbe``).
        seed: the null δ and white noise draws.

    Shapes: per-image tensors (N,).
    """
    images, delta = explained.images, explained.delta
    generator = torch.Generator().manual_seed(seed)
    null, white = phase_scrambled(delta, generator), white_like(delta, generator)
    band, edges = band_mask(), edge_masks()
    outside = (~band).float()

    def read(d: Tensor) -> Tensor:
        return ruler_probability(probe, (images + d).clamp(0.0, 1.0))

    return ShortcutProbeResult(
        model=explained.model, split=f"{STUDY_SPLIT} (ruler-free, benign)",
        image_indices=explained.image_indices, explanation=dict(explained.explanation),
        reached=explained.reached, p_x=read(torch.zeros_like(delta)), p_delta=read(delta),
        p_null=read(null), p_white=read(white), band_ratio=band_energy_ratio(delta, band),
        band_ratio_null=band_energy_ratio(null, band), edge_ratio=band_energy_ratio(delta, edges).amax(1),
        edge_ratio_null=band_energy_ratio(null, edges).amax(1), malignant_x=_malignant(module, images),
        malignant_delta=_malignant(module, images + delta),
        malignant_band=_malignant(module, images + delta * band),
        malignant_centre=_malignant(module, images + delta * outside),
        malignant_band_null=_malignant(module, images + null * band),
        malignant_centre_null=_malignant(module, images + null * outside),
    )  # fmt: skip


def shortcut_probe(
    model: LoadedModel,
    probe: nn.Module,
    *,
    n_images: int,
    seed: int,
    config: ExplanationConfig | None = None,
) -> ShortcutProbeResult:
    """Explain N ruler-free benign lesions toward "malignant" and read δ three ways (module docstring).

    Args:
        model: a lesions network (benign, malignant; 64×64). Its lock is held while explaining.
        probe: images in [0, 1] -> ruler logit (``RulerProbe``).
        n_images: the first N benign images of the ruler-free test split.
        seed: the null δ and white noise draws.
        config: the AE's ρ, S and overshoot (default: the project's, ``ExplanationConfig()``).

    Returns:
        ``ShortcutProbeResult``.

    Shapes: per-image tensors (N,).
    """
    explained = explain_toward_malignant(model, n_images=n_images, config=config)
    return read_explained(model.module, explained, probe, seed=seed)


# Each reading of δ with its null (the same reading of the phase-scrambled δ).
READINGS = {
    "probe": ("p_delta", "p_null"),
    "band_energy": ("band_ratio", "band_ratio_null"),
    "edge_energy": ("edge_ratio", "edge_ratio_null"),
    "band_flips": ("malignant_band", "malignant_band_null"),
}
BOOTSTRAP_RESAMPLES = 2000


def paired_interval(values: Tensor, *, generator: torch.Generator) -> tuple[float, float, float]:
    """Mean and 95 % bootstrap interval (percentile, ``BOOTSTRAP_RESAMPLES`` resamples) of per-image
    values, e.g. paired differences. Shapes: (N,) -> three floats."""
    v = values.double()
    picks = torch.randint(0, len(v), (BOOTSTRAP_RESAMPLES, len(v)), generator=generator)
    means = v[picks].mean(1)
    low, high = torch.quantile(means, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return float(v.mean()), low, high


@dataclass(frozen=True)
class Separation:
    """Does one reading tell the ruler network from the control on the same images?

    Attributes:
        reading: a key of ``READINGS``.
        control, ruler_net: mean reading of δ for the control and for the network that uses the ruler.
        difference: ruler_net − control, per image: (mean, 95 % low, 95 % high).
        ruler_net_over_null, control_over_null: δ's reading minus its null's, per image.
        separates: the ruler network reads higher than the control (interval above 0), because of
            where its δ lies (above its null), while the control does not read above its own null.
    """

    reading: str
    control: float
    ruler_net: float
    difference: tuple[float, float, float]
    ruler_net_over_null: tuple[float, float, float]
    control_over_null: tuple[float, float, float]

    @property
    def separates(self) -> bool:
        return self.difference[1] > 0 and self.ruler_net_over_null[1] > 0 and self.control_over_null[1] <= 0

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "separates": self.separates}


def separation(
    control: ShortcutProbeResult, ruler_net: ShortcutProbeResult, *, seed: int
) -> tuple[Separation, ...]:
    """Each reading of ``READINGS`` for a network that uses the ruler against the control, on the
    same images (paired bootstrap).

    Raises:
        ValueError: the two results are not on the same images.
    """
    if control.image_indices != ruler_net.image_indices:
        raise ValueError("separation compares two networks on the same images.")
    generator = torch.Generator().manual_seed(seed)
    out = []
    for reading, (name, null) in READINGS.items():
        a, a0 = getattr(control, name).double(), getattr(control, null).double()
        b, b0 = getattr(ruler_net, name).double(), getattr(ruler_net, null).double()
        out.append(
            Separation(
                reading,
                float(a.mean()),
                float(b.mean()),
                paired_interval(b - a, generator=generator),
                paired_interval(b - b0, generator=generator),
                paired_interval(a - a0, generator=generator),
            )  # fmt: skip
        )
    return tuple(out)


__all__ = [
    "MEASURES",
    "READINGS",
    "ProbeConfig",
    "ProbeValidation",
    "RulerProbe",
    "Separation",
    "ShortcutProbeResult",
    "band_energy_ratio",
    "band_mask",
    "Explained",
    "benign_ruler_free",
    "explain_toward_malignant",
    "read_explained",
    "edge_masks",
    "paired_interval",
    "phase_scrambled",
    "ruler_probability",
    "ruler_twins",
    "separation",
    "shortcut_probe",
    "train_ruler_probe",
    "validate_probe",
    "white_like",
]
