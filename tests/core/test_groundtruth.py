"""Ground-truth datasets: lesion and ruler masks line up with what is drawn, the ruler's rates per
class, determinism, BlockMNIST's layout, and clear errors. Small N wherever the generator is called
directly; the full ``test`` splits once each."""

from __future__ import annotations

import functools

import pytest
import torch
from torch.utils.data import DataLoader

from advexp_core.data.datasets import (
    LESIONS_SEEDS,
    LESIONS_SIZES,
    DatasetError,
    MaskedImageDataset,
    load_dataset,
    load_digits,
)
from advexp_core.data.groundtruth import (
    LESION_SIZE,
    RULER_WIDTH,
    UNBIASED_RULER_RATES,
    LesionImages,
    generate_lesions,
    null_patch,
)


def _lesions(n: int, seed: int = 0, **kw) -> LesionImages:
    return generate_lesions(n, generator=torch.Generator().manual_seed(seed), **kw)


@functools.cache
def _split(name: str, split: str) -> MaskedImageDataset:
    data = load_dataset(name, split, with_masks=True)
    assert isinstance(data, MaskedImageDataset)
    return data


def test_lesion_images_are_64px_rgb_in_unit_range_half_of_each_class() -> None:
    data = _lesions(40)
    assert data.images.shape == (40, 3, LESION_SIZE, LESION_SIZE) and data.images.dtype == torch.float32
    assert 0.0 <= float(data.images.min()) and float(data.images.max()) <= 1.0
    assert data.labels.dtype == torch.int64 and int(data.labels.sum()) == 20
    assert data.lesion_masks.shape == data.ruler_masks.shape == (40, 64, 64)
    assert data.lesion_masks.dtype == data.ruler_masks.dtype == torch.bool


def test_lesion_mask_covers_pixels_that_differ_from_the_skin_around() -> None:
    data = _lesions(40, shortcut=False)
    for image, mask in zip(data.images, data.lesion_masks, strict=True):
        assert 30 < int(mask.sum()) < 40 * 40  # one lesion, a few hundred pixels
        inside = image[:, mask].mean(dim=1)
        outside = image[:, ~mask].mean(dim=1)
        assert float((inside - outside).abs().sum()) > 0.1
    # The lesion stays in the centre, clear of the ruler's strip.
    border = torch.ones(64, 64, dtype=torch.bool)
    border[RULER_WIDTH + 1 : -RULER_WIDTH - 1, RULER_WIDTH + 1 : -RULER_WIDTH - 1] = False
    assert not (data.lesion_masks & border).any()


def test_ruler_mask_is_exactly_where_the_ruler_changes_the_image() -> None:
    with_ruler = _lesions(40, seed=3, ruler_rates=(1.0, 1.0))
    without = _lesions(40, seed=3, ruler_rates=(1.0, 1.0), shortcut=False)
    assert with_ruler.has_ruler.all() and not without.has_ruler.any() and not without.ruler_masks.any()
    assert torch.equal(with_ruler.labels, without.labels)
    assert torch.equal(with_ruler.lesion_masks, without.lesion_masks)
    changed = (with_ruler.images - without.images).abs().amax(dim=1)
    mask = with_ruler.ruler_masks
    assert not (changed[~mask] > 0).any()  # nothing outside the mask moves
    assert float((changed[mask] > 0.05).float().mean()) > 0.95
    assert not (mask & with_ruler.lesion_masks).any()
    # A strip along one edge, at most RULER_WIDTH deep.
    for m in mask:
        depth = [
            m[:RULER_WIDTH].any(),
            m[-RULER_WIDTH:].any(),
            m[:, :RULER_WIDTH].any(),
            m[:, -RULER_WIDTH:].any(),
        ]
        assert sum(bool(d) for d in depth) >= 1
        inner = m[RULER_WIDTH:-RULER_WIDTH, RULER_WIDTH:-RULER_WIDTH]
        assert not inner.any()


def test_generation_is_deterministic_per_seed() -> None:
    a, b, c = _lesions(12, seed=5), _lesions(12, seed=5), _lesions(12, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.ruler_masks, b.ruler_masks)
    assert not torch.equal(a.images, c.images)
    assert len(set(LESIONS_SEEDS.values())) == len(LESIONS_SEEDS)


def _ruler_rate(data: MaskedImageDataset, label: int) -> float:
    has = data.masks["shortcut"].flatten(1).any(dim=1)
    return float(has[data.labels == label].float().mean())


def test_lesion_test_splits_carry_the_shortcut_and_the_unbiased_split_breaks_it() -> None:
    test, unbiased = _split("lesions", "test"), _split("lesions", "test-unbiased")
    assert len(test) == LESIONS_SIZES["test"] and len(unbiased) == LESIONS_SIZES["test-unbiased"]
    assert test.class_names == ("benign", "malignant") and test.flip_ok
    # 500 per class: 3 standard errors of a rate of 0.85 are about 0.05, of 0.5 about 0.07.
    assert abs(_ruler_rate(test, 1) - 0.85) < 0.05 and abs(_ruler_rate(test, 0) - 0.15) < 0.05
    assert abs(_ruler_rate(unbiased, 1) - 0.5) < 0.07 and abs(_ruler_rate(unbiased, 0) - 0.5) < 0.07
    assert abs(_ruler_rate(unbiased, 1) - _ruler_rate(unbiased, 0)) < 0.1
    assert not torch.equal(test.images, unbiased.images)
    again = load_dataset("lesions", "test")
    assert isinstance(again, MaskedImageDataset) and torch.equal(again.images, test.images)


def test_generator_rates_follow_the_class_within_sampling_error() -> None:
    data = _lesions(400, seed=11, ruler_rates=(0.15, 0.85))
    rates = [float(data.has_ruler[data.labels == c].float().mean()) for c in (0, 1)]
    assert abs(rates[0] - 0.15) < 0.08 and abs(rates[1] - 0.85) < 0.08
    flat = _lesions(400, seed=11, ruler_rates=UNBIASED_RULER_RATES)
    assert abs(float(flat.has_ruler.float().mean()) - 0.5) < 0.08


def test_items_are_pairs_by_default_and_triples_with_masks() -> None:
    test = _split("lesions", "test")
    image, label, masks = test[3]
    assert image.shape == (3, 64, 64) and label in (0, 1) and set(masks) == {"evidence", "shortcut"}
    assert masks["evidence"].shape == (64, 64) and masks["evidence"].dtype == torch.bool
    plain = MaskedImageDataset("lesions", "test", test.class_names, test.images, test.labels, test.masks)
    assert len(plain[3]) == 2 and torch.equal(plain[3][0], image)
    batch = next(iter(DataLoader(test, batch_size=4)))
    assert batch[2]["shortcut"].shape == (4, 64, 64)


def test_shortcut_free_split_is_the_same_images_without_the_ruler() -> None:
    free = load_dataset("lesions", "test", shortcut=False, with_masks=True)
    assert isinstance(free, MaskedImageDataset) and not free.masks["shortcut"].any()
    test = _split("lesions", "test")
    assert torch.equal(free.labels, test.labels)
    outside = ~test.masks["shortcut"][:, None].expand_as(test.images)
    assert torch.equal(free.images[outside], test.images[outside])


def test_blockdigits_put_the_digit_in_its_quadrant_and_the_null_patch_elsewhere() -> None:
    data, digits = _split("blockdigits", "test"), load_digits("test")
    assert len(data) == len(digits) and data.class_names == digits.class_names and not data.flip_ok
    assert torch.equal(data.labels, digits.labels)
    image, label, masks = data[0]
    assert image.shape == (3, 64, 64) and set(masks) == {"evidence"}
    null = null_patch()
    quadrants = set()
    for i in range(0, len(data), 7):
        image, evidence = data.images[i], data.masks["evidence"][i]
        assert torch.equal(image[0], image[1]) and torch.equal(image[0], image[2])
        assert int(evidence.sum()) == 32 * 32
        for q in range(4):
            r, c = divmod(q, 2)
            block = image[0, 32 * r : 32 * r + 32, 32 * c : 32 * c + 32]
            if evidence[32 * r, 32 * c]:
                quadrants.add(q)
                torch.testing.assert_close(block, digits.images[i, 0], rtol=0, atol=0)
            else:
                torch.testing.assert_close(block, null, rtol=0, atol=0)
    assert quadrants == {0, 1, 2, 3}
    assert float(null.max()) > 0.5 and float(null.min()) == 0.0  # a visible, fixed pattern
    assert torch.equal(load_dataset("blockdigits", "test").images, data.images)


def test_unknown_splits_and_options_are_clear_errors() -> None:
    with pytest.raises(DatasetError, match="no split 'val'.*test-unbiased"):
        load_dataset("lesions", "val")
    with pytest.raises(DatasetError, match="no split 'test-unbiased'"):
        load_dataset("blockdigits", "test-unbiased")
    with pytest.raises(DatasetError, match="no ground-truth masks"):
        load_dataset("digits", with_masks=True)
    with pytest.raises(DatasetError, match="shortcut=False is for 'lesions'"):
        load_dataset("blockdigits", shortcut=False)


def test_lesions_no_ruler_is_the_shortcut_free_twin_by_name() -> None:
    from advexp_core.data.datasets import load_dataset

    by_name = load_dataset("lesions-no-ruler", "test")
    by_flag = load_dataset("lesions", "test", shortcut=False)
    assert torch.equal(by_name.images, by_flag.images) and torch.equal(by_name.labels, by_flag.labels)
