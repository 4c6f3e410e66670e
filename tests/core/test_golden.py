"""Golden numbers from the authors' reference code (github: wwoods/adversarial-explanations-cifar).

How they were obtained: the functions ``_adv_images``, ``_model_robust_get_grads`` and
``_model_train_batch`` were taken verbatim from the reference's ``main.py`` (HEAD of the public
repository) and run once, outside this repository, on the tiny networks and batch that
``tiny_net``/``tiny_batch`` rebuild below (torch 2.x CPU, float64, seeded generators). Their random
draws (half-and-half mask, smoothed logit, tandem flag) came from ``torch.manual_seed(s)`` and are
written here as the explicit choices they produced. The reference's code is not part of this
repository; only its numbers are.

Tolerances: the reference normalises a direction by ``1e-8 + RMS``, we divide by the RMS exactly,
so search results agree to ~1e-4 relative after 60 steps and to ~1e-6 elsewhere; any change to the
step schedule, momentum, boundary test, penalty or controller moves them by far more.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from advexp_core.base.distributed import DistContext
from advexp_core.methods.attacks import minimal_perturbation, step_schedule
from advexp_core.methods.geometry import rms
from advexp_core.training.loop import BatchDraws, TrainConfig, _State, _train_step
from advexp_core.training.robust import PenaltyChoice, PsiState, adversarial_images, lipschitz_penalty


def tiny_net(bn: bool = False) -> nn.Sequential:
    """48 -> 8 (-> BatchNorm) -> tanh -> 3, float64, weights 0.3·N(0, 1) from seed 1906."""
    g = torch.Generator().manual_seed(1906)
    layers = (
        [nn.Flatten(), nn.Linear(48, 8)] + ([nn.BatchNorm1d(8)] if bn else []) + [nn.Tanh(), nn.Linear(8, 3)]
    )
    net = nn.Sequential(*layers).double()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=torch.float64))
    return net


def tiny_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Six 3×4×4 images from seed 2019; labels = the clean predictions, the last one made wrong."""
    x = torch.rand(6, 3, 4, 4, generator=torch.Generator().manual_seed(2019), dtype=torch.float64)
    return x, torch.tensor(LABELS)


LABELS = [0, 0, 0, 0, 0, 1]
CLEAN_LOGITS_0 = [0.3858451762035007, -0.4912764548727189, -1.2798663383970528]


def _eval_net() -> nn.Sequential:
    return tiny_net().eval().requires_grad_(False)


def test_tiny_network_is_rebuilt_exactly() -> None:
    net, (x, _) = _eval_net(), tiny_batch()
    logits = net(x)
    assert logits[0].tolist() == pytest.approx(CLEAN_LOGITS_0, abs=1e-12)
    assert logits[:5].argmax(1).tolist() == LABELS[:5] and int(logits[5].argmax()) != LABELS[5]


def test_step_schedule_matches_the_reference_explanations() -> None:
    # Reference: AdversarialOptions(encourage_labels=True, eps=0.1, eps_overshoot=5, steps=12).
    net, (x, _) = _eval_net(), tiny_batch()
    found = step_schedule(net, x, [0, 1, 2, 0, 1, 2], size=0.5, steps=12, budget=0.1, targeted=True)
    want_rms = [0.09616545146004309, 0.10341271241542051, 0.1021059070385986,
                0.09839424995390575, 0.10047281544781882, 0.10210744059097901]  # fmt: skip
    assert found.rms.tolist() == pytest.approx(want_rms, rel=2e-6)
    want_logits_2 = [-0.4771096977038609, 0.13953933403860502, 0.7237434155692178]
    assert found.logits_after[2].tolist() == pytest.approx(want_logits_2, rel=2e-6)
    # Reference: AdversarialOptions(eps=0.01) — the "L2" training attack (7 steps).
    l2 = step_schedule(net, x, LABELS, size=0.01, steps=7, budget=0.01)
    assert l2.rms.tolist() == pytest.approx(
        [0.009999478111649496, 0.009999499084598091, 0.009998201555438619,
         0.00999964591838407, 0.009999235012367696, 0.009999318384265031], rel=1e-6,
    )  # fmt: skip


# Reference: AdversarialOptions(steps=60, eps=E, eps_overshoot=1, use_l2min=True|'btr', momentum=0.9);
# ρ* = RMS of the returned perturbation, first_ok_steps recorded from its half-way check (1059 = never).
L2MIN = {
    (5.0, "misclassified"): ([0.059349250787379536, 0.03234699882162387, 0.010317283847185965,
                              0.003939118761141712, 0.0978931707973369, 0.0], [3, 2, 1, 1, 4, 0]),
    (5.0, "btr"): ([0.06323435144633634, 0.03234699882162387, 0.023340303422526586,
                    0.012098430357390891, 0.10627011783254317, 0.0], [3, 2, 2, 1, 4, 0]),
    (0.1, "misclassified"): ([0.05926251587771056, 0.03200311492503585, 0.01046044142371971,
                              0.003761226585995689, None, 0.0], [37, 21, 9, 5, 1059, 0]),
    (0.1, "btr"): ([0.06348685530610046, 0.032406909212510916, 0.023330719596571535,
                    0.01158370411559368, None, 0.0], [40, 21, 16, 10, 1059, 0]),
}  # fmt: skip


@pytest.mark.parametrize(("size", "boundary"), list(L2MIN))
def test_l2min_search_matches_the_reference(size: float, boundary: str) -> None:
    net, (x, y) = _eval_net(), tiny_batch()
    want_rho, first_ok = L2MIN[(size, boundary)]
    found = minimal_perturbation(net, x, y, boundary=boundary, steps=60, size=size)  # type: ignore[arg-type]
    assert found.reached_step.tolist() == [-1 if s > 60 else s for s in first_ok]
    for got, want in zip(found.rms.tolist(), want_rho, strict=True):
        if want is not None:  # None: never met (the reference then raises)
            assert got == pytest.approx(want, rel=2e-4, abs=1e-12)


def test_penalty_matches_the_reference() -> None:
    # Reference: torch.manual_seed(1); _model_robust_get_grads(net(x), x, y, train=True), ψ = 220.
    net, (x, y) = tiny_net().eval(), tiny_batch()
    x = x.clone().requires_grad_(True)
    choice = PenaltyChoice(
        torch.tensor([0, 2, 1, 1, 0, 1]), torch.tensor([False, False, False, True, False, False])
    )
    penalty = lipschitz_penalty(net(x), x, y, choice, psi=220.0)
    assert float(penalty.detach()) == pytest.approx(15.192451869458537, rel=1e-12)
    (dw,) = torch.autograd.grad(penalty, net[1].weight)  # double backprop reaches the weights
    assert float(dw.sum()) == pytest.approx(-139.39457931876328, rel=1e-10)
    assert float(dw.norm()) == pytest.approx(35.066782644235246, rel=1e-10)


# Reference, BatchNorm network in train mode, torch.manual_seed(7), then
# _adv_images(m, x, y, AdversarialOptions(use_l2min=True, eps=0.1, use_half_and_half=True,
# ensure_proper_minimization=False)) followed by _model_train_batch (robust additions, SGD 0.1/0.9/1e-4).
HALF_MASK = [False, True, False, False, True, True]
HALF_ADV_RMS = [0.0, 0.0, 0.0, 0.0, 0.0463614415046108, 0.0]
HALF_RUNNING_MEAN = [-0.4389534143735411, 0.3357074172749788, -0.060345410683562, 0.6729920476816096,
                     0.13091673925803043, 0.18580260125810147, 0.8715653296944706, -0.7373910508482993]  # fmt: skip
HALF_RUNNING_VAR = [0.6873740815911313, 0.9250901812765339, 0.5228758656147647, 0.5854502075515202,
                    0.4436999394864233, 0.5223909435339793, 0.500086965636294, 0.7064691346806595]  # fmt: skip
STEP_CHOICE = PenaltyChoice(torch.tensor([1, 1, 2, 1, 0, 1]), torch.tensor([False] * 5 + [True]))
STEP_INTEGRAL = 0.40813763079234366
STEP_W1_SUM, STEP_W3_SUM = 22.47806195720834, -1.4649763243723335
STEP_RUNNING_MEAN_0 = -0.4725635455540683


def test_half_and_half_attack_matches_the_reference_including_batchnorm() -> None:
    net, (x, y) = tiny_net(bn=True).train(), tiny_batch()
    adv = adversarial_images(net, x, y, mode="l2min", perturb=torch.tensor(HALF_MASK))
    assert rms(adv - x).tolist() == pytest.approx(HALF_ADV_RMS, rel=1e-6, abs=1e-12)
    bn = net[2]
    assert int(bn.num_batches_tracked) == 8  # S + 1 full-batch forwards, as the reference
    # BN sees the iterates, which carry the reference's 1e-8 normalisation offset: ~1e-7 relative.
    assert bn.running_mean.tolist() == pytest.approx(HALF_RUNNING_MEAN, rel=1e-6)
    assert bn.running_var.tolist() == pytest.approx(HALF_RUNNING_VAR, rel=1e-6)


def test_one_training_step_of_recipe_all_matches_the_reference() -> None:
    net, (x, y) = tiny_net(bn=True), tiny_batch()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    state = _State(net, opt, {}, PsiState())
    draws = BatchDraws(torch.zeros(6, 2, dtype=torch.long), torch.zeros(6, dtype=torch.bool),
                       torch.tensor(HALF_MASK), STEP_CHOICE)  # fmt: skip
    config = TrainConfig(recipe="all", crop_padding=0)
    net.train()
    _train_step(state, net, x, y, draws, config, DistContext())
    assert state.psi.integral == pytest.approx(STEP_INTEGRAL, rel=1e-6)
    assert float(net[1].weight.detach().sum()) == pytest.approx(STEP_W1_SUM, rel=1e-6)
    assert float(net[4].weight.detach().sum()) == pytest.approx(STEP_W3_SUM, rel=1e-6)
    assert int(net[2].num_batches_tracked) == 9
    assert float(net[2].running_mean[0]) == pytest.approx(STEP_RUNNING_MEAN_0, rel=1e-6)


def test_reference_ara_subset() -> None:
    # Reference: torch.manual_seed(1776); torch.randperm(len(ds_test))[:n].
    from advexp_core.methods.ara import select_images

    assert select_images(10000, 12) == [206, 3055, 6922, 5766, 8892, 7078, 9350, 6912, 1807, 4344, 8234, 3452]
    assert select_images(359, 12) == [9, 339, 207, 46, 230, 61, 96, 171, 165, 140, 275, 326]
    assert select_images(359, 5, sample="first") == [0, 1, 2, 3, 4]
