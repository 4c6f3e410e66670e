"""Repair (docs/method.md §10): the counterfactual pairs, the RRR penalty against its closed form on a
linear model, last-layer retraining, group weights, the split, and a repair measured end to end on a
hand-made network that reads an artifact."""

from __future__ import annotations

import json
import threading

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from advexp_core.data.imaging import Preprocess
from advexp_core.experiments.repair import (
    EXACT_TWINS,
    INTERVENTIONS,
    RepairConfig,
    RepairData,
    check_data,
    held_out_images,
    repair,
    split_indices,
)
from advexp_core.networks.registry import LoadedModel, load_model
from advexp_core.networks.zoo import Classifier
from advexp_core.training.repair import (
    FineTuneConfig,
    RepairError,
    counterfactual_pairs,
    fine_tune,
    group_weights,
    has_artifact,
    last_layer,
    network_weights,
    rrr_penalty,
    save_weights,
)
from tests.models import TinyConv, frozen

SIZE = 16
STRIP = 2  # the artifact: the top rows, bright


def _data(n: int = 64, seed: int = 0, rates: tuple[float, float] = (0.15, 0.85)) -> RepairData:
    """Grey images whose class is the centre's brightness; an artifact (a bright strip along the top)
    on 15 % of class 0 and 85 % of class 1, with its exact twins."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    base = 0.5 + 0.05 * torch.randn(n, 1, SIZE, SIZE, generator=g)
    centre = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    centre[5:11, 5:11] = True
    removed = (
        torch.where(centre, base + 0.3 * (2 * labels.view(-1, 1, 1, 1) - 1), base)
        .clamp(0, 1)
        .expand(-1, 3, -1, -1)
    )
    strip = torch.zeros(SIZE, SIZE, dtype=torch.bool)
    strip[:STRIP] = True
    has = torch.rand(n, generator=g) < torch.tensor(rates)[labels]
    has[:4] = torch.tensor([True, True, False, False])  # both kinds in both classes
    masks = strip.expand(n, -1, -1) & has.view(-1, 1, 1)
    added = torch.where(strip, torch.ones(()), removed)
    images = torch.where(has.view(-1, 1, 1, 1), added, removed)
    return RepairData(
        "toy", images.contiguous(), labels, masks.clone(), removed.contiguous(), added.contiguous()
    )


class StripReader(nn.Module):
    """Two hand-made features, the strip's and the centre's mean brightness, and a linear head that
    reads the strip alone: class 1 exactly when the artifact is there."""

    def __init__(self) -> None:
        super().__init__()
        strip = torch.zeros(SIZE, SIZE)
        strip[:STRIP] = 1.0 / (STRIP * SIZE)
        centre = torch.zeros(SIZE, SIZE)
        centre[5:11, 5:11] = 1.0 / 36
        self.register_buffer("regions", torch.stack([strip, centre]))
        self.head = nn.Linear(2, 2)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[0.0, 0.0], [20.0, 0.0]]))
            self.head.bias.copy_(torch.tensor([0.0, -15.0]))

    def forward(self, x: Tensor) -> Tensor:
        features = torch.einsum("nchw,khw->nk", x, self.regions) / x.shape[1]
        return self.head(features)


def _loaded(module: nn.Module) -> LoadedModel:
    net = frozen(module)
    return LoadedModel(
        "toy",
        net,
        ("a", "b"),
        (SIZE, SIZE),
        net,
        False,
        "test",
        Preprocess((SIZE, SIZE)),
        lock=threading.RLock(),
    )


# --- counterfactual pairs ---------------------------------------------------------------------------


def test_pairs_change_nothing_outside_the_artifact() -> None:
    data = _data()
    pairs = counterfactual_pairs(data.images, data.masks, generator=torch.Generator().manual_seed(0))
    has = has_artifact(data.masks)
    outside = ~pairs.placed.unsqueeze(1).expand_as(data.images)
    assert torch.equal(pairs.with_artifact[outside], data.images[outside])
    assert torch.equal(pairs.without_artifact[outside], data.images[outside])
    # one of the two versions is the image itself
    assert torch.equal(pairs.with_artifact[has], data.images[has])
    assert torch.equal(pairs.without_artifact[~has], data.images[~has])
    # pasted: the donor's own pixels at its own place; removed: the strip is gone (filled near 0.5)
    for i in torch.nonzero(~has).flatten().tolist():
        donor = int(pairs.donors[i])
        assert bool(has[donor]) and torch.equal(pairs.placed[i], data.masks[donor])
        inside = pairs.placed[i].expand(3, -1, -1)
        assert torch.equal(pairs.with_artifact[i][inside], data.images[donor][inside])
    strip_values = pairs.without_artifact[has][:, :, :STRIP]
    assert float((strip_values - 0.5).abs().max()) < 0.25


def test_pairs_are_deterministic_and_need_an_artifact() -> None:
    data = _data()
    a = counterfactual_pairs(data.images, data.masks, generator=torch.Generator().manual_seed(3))
    b = counterfactual_pairs(data.images, data.masks, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a.with_artifact, b.with_artifact) and torch.equal(a.donors, b.donors)
    with pytest.raises(RepairError, match="no image has a marked artifact") as info:
        counterfactual_pairs(data.images, torch.zeros_like(data.masks), generator=torch.Generator())
    assert info.value.setting == "masks"


def test_group_weights_balance_the_artifact_within_each_class() -> None:
    data = _data()
    has = has_artifact(data.masks)
    w = group_weights(data.labels, has)
    assert float(w.sum()) == pytest.approx(len(w))
    for label in (0, 1):
        in_class = data.labels == label
        assert float(w[in_class & has].sum()) == pytest.approx(float(w[in_class & ~has].sum()))
        assert float(w[in_class].sum()) == pytest.approx(float(in_class.sum()))


# --- the RRR penalty --------------------------------------------------------------------------------


def test_rrr_penalty_and_its_gradient_equal_the_closed_form_on_a_linear_model() -> None:
    """logits z = W·x + b: ∂(Σ_k log p_k)/∂x = Σ_k W_k − C·Σ_j p_j W_j, so the penalty is a plain
    function of W whose gradient autograd gets without double backprop."""
    g = torch.Generator().manual_seed(0)
    c, d = 3, 2 * 4 * 4
    weight = torch.randn(c, 3 * d // 2, generator=g, dtype=torch.float64).requires_grad_(True)
    bias = torch.randn(c, generator=g, dtype=torch.float64)
    x = torch.rand(5, 3, 4, 4, generator=g, dtype=torch.float64).requires_grad_(True)
    masks = torch.rand(5, 4, 4, generator=g) < 0.3
    lam = 0.7

    logits = x.flatten(1) @ weight.T + bias
    penalty = rrr_penalty(logits, x, masks, weight=lam)
    (got,) = torch.autograd.grad(penalty, weight)

    w = weight.detach().clone().requires_grad_(True)
    p = F.softmax(x.detach().flatten(1) @ w.T + bias, dim=1)
    grad_x = w.sum(0) - c * p @ w  # (N, D)
    m = masks.unsqueeze(1).expand(-1, 3, -1, -1).flatten(1).double()
    closed = lam * ((m * grad_x) ** 2).sum(1).mean()
    (expected,) = torch.autograd.grad(closed, w)
    assert float(penalty.detach()) == pytest.approx(float(closed.detach()), rel=1e-12)
    assert torch.allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_rrr_penalty_is_zero_outside_any_mask() -> None:
    x = torch.rand(2, 3, 4, 4, requires_grad=True)
    logits = nn.Linear(48, 2)(x.flatten(1))
    assert float(rrr_penalty(logits, x, torch.zeros(2, 4, 4, dtype=torch.bool), weight=5.0).detach()) == 0.0


# --- fine-tuning -----------------------------------------------------------------------------------


def test_last_layer_retraining_touches_only_the_classifier_and_not_the_original() -> None:
    torch.manual_seed(0)
    module = frozen(TinyConv(classes=2))
    before = {k: v.clone() for k, v in module.state_dict().items()}
    assert last_layer(module)[0] == "head"
    data = _data(32)
    config = FineTuneConfig(method="last-layer", epochs=2, batch_size=8, lr=0.1, crop_padding=0)
    tuned = fine_tune(module, data.images, data.labels, data.masks, config, num_classes=2)
    assert tuned.trained == "head"
    after = tuned.module.state_dict()
    changed = {k for k in after if not torch.equal(after[k], before[k])}
    assert changed == {"head.weight", "head.bias"}  # BatchNorm-free body, frozen features
    assert all(torch.equal(v, before[k]) for k, v in module.state_dict().items())
    assert not module.training and not any(p.requires_grad for p in module.parameters())
    assert not tuned.module.training and not any(p.requires_grad for p in tuned.module.parameters())


@pytest.mark.parametrize("method", ["augment", "rrr"])
def test_fine_tuning_is_deterministic(method: str) -> None:
    torch.manual_seed(1)
    module = frozen(TinyConv(classes=2))
    data = _data(24)
    config = FineTuneConfig(method=method, epochs=1, batch_size=8, lr=0.05, seed=2)
    runs = [fine_tune(module, data.images, data.labels, data.masks, config, num_classes=2) for _ in range(2)]
    for key, value in runs[0].module.state_dict().items():
        assert torch.equal(value, runs[1].module.state_dict()[key])
    assert runs[0].history[0].rrr > 0 if method == "rrr" else runs[0].history[0].rrr == 0


def test_the_robust_additions_run_their_controller() -> None:
    torch.manual_seed(1)
    data = _data(16)
    config = FineTuneConfig(method="rrr", epochs=1, batch_size=8, robust=True)
    tuned = fine_tune(
        frozen(TinyConv(classes=2)), data.images, data.labels, data.masks, config, num_classes=2
    )
    assert tuned.psi is not None and tuned.history[0].lipschitz > 0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(RepairError, match="unknown repair method"):
        FineTuneConfig(method="prune")
    with pytest.raises(RepairError) as info:
        FineTuneConfig(method="augment", epochs=0)
    assert info.value.setting == "epochs"
    with pytest.raises(RepairError) as info:
        RepairConfig(FineTuneConfig(method="augment"), held_out=1.0)
    assert info.value.setting == "held_out"


# --- the data and the split ------------------------------------------------------------------------


def test_the_split_is_seeded_stratified_and_complete() -> None:
    data = _data(80)
    has = has_artifact(data.masks)
    repair_idx, held = split_indices(data.labels, has, held_out=0.25, seed=4)
    again = split_indices(data.labels, has, held_out=0.25, seed=4)
    assert torch.equal(held, again[1]) and not torch.equal(
        held, split_indices(data.labels, has, held_out=0.25, seed=5)[1]
    )
    assert sorted(repair_idx.tolist() + held.tolist()) == list(range(80))
    for label in (0, 1):
        for flag in (True, False):
            group = (data.labels == label) & (has == flag)
            k = int(group[held].sum())
            assert k == min(max(round(0.25 * int(group.sum())), 1), int(group.sum()) - 1)


def test_data_a_repair_cannot_use_is_refused() -> None:
    data = _data()
    names = ("a", "b")
    with pytest.raises(RepairError, match="no image has its artifact marked"):
        check_data(RepairData("x", data.images, data.labels, torch.zeros_like(data.masks)), names)
    one_class = data.masks & (data.labels == 1).view(-1, 1, 1)
    with pytest.raises(RepairError, match="marked only on images of class 'b'") as info:
        check_data(RepairData("x", data.images, data.labels, one_class), names)
    assert info.value.setting == "masks"
    with pytest.raises(RepairError) as info:
        check_data(RepairData("x", data.images, data.labels + 1, data.masks), names)
    assert info.value.setting == "labels"


def test_held_out_counterfactuals_are_exact_twins_when_the_data_have_them() -> None:
    data = _data()
    idx = torch.arange(0, 64, 3)
    exact = held_out_images(data, idx, seed=0)
    assert exact.intervention == EXACT_TWINS
    assert torch.equal(exact.removed, data.removed[idx]) and torch.equal(exact.added, data.added[idx])
    made = held_out_images(RepairData("x", data.images, data.labels, data.masks), idx, seed=0)
    assert made.intervention == INTERVENTIONS
    assert torch.equal(made.removed[~made.has], made.images[~made.has])
    assert torch.equal(made.added[made.has], made.images[made.has])


# --- a repair end to end ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["augment", "last-layer"])
def test_a_repair_stops_the_network_reading_the_artifact(method: str) -> None:
    model = _loaded(StripReader())
    data = _data(96)
    training = FineTuneConfig(
        method=method, epochs=25, batch_size=16, lr=0.5, crop_padding=0, weight_decay=0.0
    )
    result = repair(model, data, RepairConfig(training, held_out=0.25, attack_steps=2))
    report = json.loads(json.dumps(result.to_json()))  # JSON-able as it is
    before, after = report["before"], report["after"]
    assert before["removed"]["outcome"] == "relies" and before["removed"]["decisions_changed"] > 0.5
    assert after["removed"]["n_changed"] <= 1 and after["added"]["n_changed"] <= 1
    assert after["accuracy"]["artifact_removed"] > before["accuracy"]["artifact_removed"]
    assert report["split"]["held_out"] == len(result.held.indices) and report["intervention"] == EXACT_TWINS
    assert report["weights_sha256"]["before"] != report["weights_sha256"]["after"]
    assert all(
        lo <= hi for lo, hi in [before["removed"]["decisions_changed_ci"], after["attack"]["flip_rate_ci"]]
    )
    assert model.module.head.weight[1, 0] == 20.0  # the model itself is untouched


def test_a_repair_refuses_images_of_another_size() -> None:
    data = _data()
    small = RepairData("x", data.images[..., :8, :8], data.labels, data.masks[..., :8, :8])
    with pytest.raises(RepairError, match="the network takes"):
        repair(_loaded(StripReader()), small, RepairConfig(FineTuneConfig(method="augment")))


# --- writing the weights -------------------------------------------------------------------------


def test_an_advexp_checkpoint_round_trips(tmp_path) -> None:
    original = load_model("lesions-standard", device="cpu")
    from advexp_core.networks.checkpoints import load_checkpoint
    from advexp_core.networks.zoo import CHECKPOINTS_DIR

    base = load_checkpoint(CHECKPOINTS_DIR / "lesions-standard.pt")
    path = tmp_path / "repaired.pt"
    save_weights(original.module, path, fmt="advexp", base=base, provenance={"method": "augment"})
    again = load_model(str(path), device="cpu")
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(again.module(x), original.module(x))
    assert load_checkpoint(path)["repair"] == {"method": "augment"} and "optimizer" not in load_checkpoint(
        path
    )
    with pytest.raises(RepairError):
        save_weights(original.module, path, fmt="advexp", base=None)


@pytest.mark.parametrize("fmt", ["state_dict", "safetensors"])
def test_a_users_weights_keep_their_format_without_the_normalisation(tmp_path, fmt: str) -> None:
    from advexp_core.networks.checkpoints import load_weights_file

    torch.manual_seed(0)
    net = TinyConv(classes=2)
    wrapped = Classifier(net, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2))
    path = tmp_path / ("w.pt" if fmt == "state_dict" else "w.safetensors")
    save_weights(wrapped, path, fmt=fmt)
    loaded = load_weights_file(path)
    assert set(loaded) == set(net.state_dict()) == set(network_weights(wrapped))
    assert all(torch.equal(loaded[k], v) for k, v in net.state_dict().items())
    with pytest.raises(RepairError, match="unknown weights format"):
        save_weights(wrapped, path, fmt="onnx")
