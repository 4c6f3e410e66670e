"""Sanity checks (Adebayo et al. 2018): layer order, a copy randomised, curves that mean something."""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor, nn

from advexp_core.evaluation import sanity as S
from advexp_core.networks.zoo import Classifier
from advexp_core.plots.figures import figure_png
from advexp_core.plots.sanity import sanity_figure
from tests.models import TwoClassLinear, frozen, hook_count, tiny_conv

FAST = {"lime": {"n_samples": 24, "n_segments": 9}}


class QuadrantNet(nn.Module):
    """Hidden units read the top-left quadrant only; the head sums them into logit 1.

    The input gradient of logit 1 is the quadrant indicator (times a constant) as long as the
    first layer is trained, whatever the head: the map must survive randomising the head and
    must not survive randomising `features`. 16 units: a random first layer almost never
    leaves them all dead (which would make the map constant).
    """

    def __init__(self, size: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(3 * size * size, 16))
        self.act = nn.ReLU()
        self.head = nn.Linear(16, 2)
        quadrant = torch.zeros(3, size, size)
        quadrant[:, : size // 2, : size // 2] = 1.0 / quadrant[:, : size // 2, : size // 2].numel()
        with torch.no_grad():
            self.features[1].weight.copy_(quadrant.flatten().expand(16, -1))
            self.features[1].bias.zero_()
            self.head.weight.copy_(torch.tensor([[0.0] * 16, [1.0] * 16]))
            self.head.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.act(self.features(x)))


def image(size: int = 8, seed: int = 0) -> Tensor:
    return 0.2 + 0.8 * torch.rand(3, size, size, generator=torch.Generator().manual_seed(seed))


def test_layers_run_from_the_head_down_through_wrappers_and_stages() -> None:
    model = Classifier(tiny_conv(), mean=(0.5,) * 3, std=(0.25,) * 3)
    assert S.randomisation_layers(model) == ["net.head", "net.features.2", "net.features.0"]
    assert S.randomisation_layers(QuadrantNet()) == ["head", "features"]
    assert S.randomisation_layers(nn.Sequential(nn.Flatten(), nn.Linear(3, 2))) == ["1"]


def test_the_shared_model_is_never_touched() -> None:
    model = tiny_conv()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    methods = ["gradient", "gradcam", "occlusion", "lime"]
    result = S.cascading_randomisation(
        model, image(12), 1, methods=methods, gradcam_layer=model.features, method_kwargs=FAST
    )
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not model.training and hook_count(model) == 0
    assert not any(p.requires_grad for p in model.parameters())
    assert result.layers == ("none", "head", "features.2", "features.0")
    for m in methods:
        assert len(result.spearman[m]) == len(result.ssim[m]) == len(result.maps[m]) == 4
        assert result.spearman[m][0] == 1.0 and result.ssim[m][0] == 1.0
        assert result.maps[m][0].shape == (12, 12)


def test_gradient_map_survives_a_new_head_but_not_a_new_first_layer() -> None:
    result = S.cascading_randomisation(QuadrantNet(), image(), 1, methods=["gradient", "ig"])
    assert result.layers == ("none", "head", "features")
    for m in ("gradient", "ig"):
        after_head, after_all = result.spearman[m][1], result.spearman[m][2]
        assert after_head > 0.9  # the quadrant is still what the (random) head reads
        assert after_all < S.SIMILAR  # a random first layer reads noise (|rho| <= 0.3 over 20 seeds)
    assert "Changed" in S.sanity_reading(result) and "Stayed" not in S.sanity_reading(result)


def test_same_seed_same_curves_other_seed_other_network() -> None:
    def run(seed: int) -> S.SanityResult:
        return S.cascading_randomisation(tiny_conv(), image(12), 0, methods=["gradient"], seed=seed)

    a, b, c = run(3), run(3), run(4)
    assert a.spearman == b.spearman and a.ssim == b.ssim
    assert all(torch.equal(x, y) for x, y in zip(a.maps["gradient"], b.maps["gradient"], strict=True))
    assert a.spearman != c.spearman


def test_progress_json_and_figure() -> None:
    steps: list[tuple[int, int]] = []
    result = S.cascading_randomisation(
        tiny_conv(), image(12), 0, methods=["gradcam", "gradient"], on_step=lambda d, t: steps.append((d, t)),
        model_name="tiny", image_name="noise.png",
    )  # fmt: skip
    assert steps == [(1, 3), (2, 3), (3, 3)]
    data = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert data["model"] == "tiny" and data["image"] == "noise.png" and data["seed"] == 0
    assert set(data["methods"]) == {"gradcam", "gradient"}
    assert data["methods"]["gradient"]["layers"][0] == "none"
    assert data["methods"]["gradient"]["spearman"][0] == 1.0
    assert figure_png(sanity_figure(result, image(12))).startswith(b"\x89PNG")


def test_reading_names_maps_that_stayed_similar() -> None:
    maps = (torch.ones(2, 2),) * 2
    result = S.SanityResult(
        layers=("none", "head"),
        spearman={"gradient": (1.0, 0.9), "gradcam": (1.0, float("nan"))},
        ssim={"gradient": (1.0, 0.8), "gradcam": (1.0, 0.1)},
        maps={"gradient": maps, "gradcam": maps},
        target=0,
        seed=0,
    )
    text = S.sanity_reading(result)
    assert "Stayed similar" in text and "Gradient (Spearman 0.90" in text
    assert "Grad-CAM (became constant" in text
    assert result.to_dict()["methods"]["gradcam"]["spearman"] == [1.0, None]


def test_data_randomisation_compares_map_by_map() -> None:
    images = torch.stack([image(12, seed=s) for s in range(3)])
    same = S.data_randomisation(tiny_conv(0), tiny_conv(0), images, 1, methods=["gradient", "occlusion"])
    assert same["images"] == 3
    assert same["methods"]["gradient"]["spearman"] == pytest.approx([1.0] * 3)
    assert same["methods"]["gradient"]["mean_ssim"] == pytest.approx(1.0)
    other = S.data_randomisation(
        tiny_conv(0), tiny_conv(7), images, 1, methods=["gradient"], targets_b=[0, 1, 2]
    )
    assert other["methods"]["gradient"]["mean_spearman"] < 0.9


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: S.cascading_randomisation(tiny_conv(), image(), 0, methods=["saliency"]), "unknown"),
        (lambda: S.cascading_randomisation(tiny_conv(), image(), 0, methods=[]), "choose from"),
        (
            lambda: S.cascading_randomisation(
                frozen(TwoClassLinear(torch.ones(3, 8, 8), 0.0)), image(), 0, methods=["gradient"]
            ),
            "no parameters",
        ),
        (
            lambda: S.cascading_randomisation(
                tiny_conv(), image(), 0, methods=["gradient"], layer_names=["x"]
            ),
            "layer",
        ),
        (lambda: S.cascading_randomisation(tiny_conv(), image()[None], 0, methods=["gradient"]), "shape"),
        (
            lambda: S.cascading_randomisation(
                tiny_conv(), image(), 0, methods=["gradcam"], gradcam_layer=nn.Conv2d(3, 3, 1)
            ),
            "not a submodule",
        ),
        (lambda: S.data_randomisation(tiny_conv(), tiny_conv(), image(), 0, methods=["gradient"]), "shape"),
    ],
)
def test_bad_input_is_refused_clearly(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_sampled_points_keep_the_cascade_cumulative() -> None:
    assert S.measured_steps(21, 8) == [3, 5, 8, 10, 13, 16, 18, 21]
    assert S.measured_steps(4, None) == S.measured_steps(4, 9) == [1, 2, 3, 4]
    net = frozen(QuadrantNet())
    every = S.cascading_randomisation(net, image(), 1, methods=["gradient"], seed=3)
    sampled = S.cascading_randomisation(net, image(), 1, methods=["gradient"], seed=3, max_points=1)
    assert sampled.layers == ("none", every.layers[-1])
    # The same generator draws every layer in order, measured or not: the end point is the same.
    assert sampled.spearman["gradient"][-1] == pytest.approx(every.spearman["gradient"][-1])


def test_lime_and_occlusion_go_through_the_registry() -> None:
    result = S.cascading_randomisation(
        frozen(QuadrantNet()), image(), 1, methods=["lime", "occlusion"], method_kwargs=FAST
    )
    assert result.spearman["lime"][0] == result.spearman["occlusion"][0] == 1.0


def test_the_experiment_copies_under_the_lock_and_leaves_the_shared_model_alone() -> None:
    from advexp_core.experiments import SanityConfig, sanity_checks, sanity_plan
    from tests.core.test_experiments import tiny_model

    model = tiny_model()
    before = {k: v.clone() for k, v in model.module.state_dict().items()}
    config = SanityConfig(methods=("gradcam", "gradient"), max_layers=2, seed=1)
    plan = sanity_plan(model, config)
    assert plan.maps == 2 * 3 and len(plan.measured) == 2 and plan.measured[-1] == plan.layers[-1]
    steps: list[tuple[int, int]] = []
    result = sanity_checks(model, image(16), config, on_step=lambda d, t: steps.append((d, t)))
    assert model.lock.entered == 1  # only the deep copy; nothing to compare on data for "tiny"
    for name, value in model.module.state_dict().items():
        torch.testing.assert_close(value, before[name], rtol=0, atol=0)
    assert hook_count(model.module) == 0 and result.data is None
    assert steps[-1] == (2, 2) and [d for d, _ in steps] == sorted(d for d, _ in steps)
    report = json.loads(json.dumps(result.to_json()))
    assert report["methods"]["gradcam"]["spearman"][0] == 1.0 and report["reading"]


def test_the_experiment_refuses_a_model_with_nothing_to_randomise() -> None:
    import dataclasses

    from advexp_core.experiments import SanityConfig, sanity_checks
    from tests.core.test_experiments import tiny_model

    bare = dataclasses.replace(tiny_model(), module=nn.Sequential(nn.Flatten(), nn.Identity()))
    with pytest.raises(ValueError, match="no layer to randomise"):
        sanity_checks(bare, image(16), SanityConfig(methods=("gradient",)))
    with pytest.raises(ValueError, match="unknown or no saliency method"):
        SanityConfig(methods=("guided-backprop",))
