"""The remedies' objective specs: each parameter's default is its reference's value
(docs/remedies.md). Torch-free: the methods are imported when a run builds one."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from bench import ObjectiveSpec, Param, float_param, int_param
from bench_remedies import objectives as o

FB_MODES = ("example", "batch", "dimension")


def _methods() -> ModuleType:
    """bench_remedies.methods (torch, scipy), imported when a run builds one of its methods:
    registering them does not import torch (``bench ls``, ``bench show``)."""
    from bench_remedies import methods

    return methods


def _warmup(budget: Any, kl_start: float, warm_up: float, span: str = "rest") -> o.KlWarmup:
    return o.KlWarmup(kl_start, warm_up, budget.steps_per_epoch, span)


def _warmup_params(kl_start: float, why: str) -> dict[str, Param]:
    """``kl_start`` and ``warm_up`` (epochs) with the reference's values."""
    return {
        "kl_start": float_param(
            kl_start, 0.0, 1.0, minimum=0.0, maximum=1.0, help=f"initial KL weight ({why})"
        ),
        "warm_up": float_param(
            10.0, 0.0, 30.0, minimum=0.0, help=f"KL warm-up epochs, 0: none ({why})"
        ),
    }


def beta_vae() -> list[ObjectiveSpec]:
    def build(budget: Any, beta: float) -> o.BetaVae:
        return o.BetaVae(beta)

    help_ = "constant KL weight"
    return [
        ObjectiveSpec(
            "beta-vae-high",
            build,
            "beta-VAE (Higgins et al. 2017) with beta > 1: KL weighted up",
            params={"beta": Param(2.0, 1.0, 10.0, log=True, help=help_)},
        ),
        ObjectiveSpec(
            "beta-vae-low",
            build,
            "beta-VAE with beta < 1: KL weighted down",
            params={"beta": Param(0.5, 0.01, 1.0, log=True, help=help_)},
        ),
    ]


def cyclical() -> ObjectiveSpec:
    def build(
        budget: Any, cycles: int, ratio: float, start: float, schedule: str, lr_restarts: str
    ):
        return _methods().Cyclical(budget, cycles, ratio, start, schedule, lr_restarts)

    return ObjectiveSpec(
        "cyclical",
        build,
        "cyclical KL annealing (Fu et al. 2019): `cycles` ramps over the budget, each "
        "restarting beta at `start` and a cosine learning rate",
        params={
            "cycles": Param(4, 1, 10, step=1, help="number of cycles M"),
            "ratio": Param(0.5, 0.1, 1.0, help="share R of each cycle spent ramping"),
            "start": float_param(
                0.1, 0.0, 0.5, minimum=0.0, maximum=1.0, help="beta at each cycle's start"
            ),
            "schedule": Param(
                "reference", choices=("reference", "paper"), help="beta: the LM script's or eq. 6"
            ),
            "lr_restarts": Param(
                "epoch", choices=("epoch", "step", "none"), help="cosine lr set per"
            ),
        },
    )


def li_free_bits(mode: str) -> ObjectiveSpec:
    def build(budget: Any, target: float, kl_start: float, warm_up: float) -> o.KlTargetFreeBits:
        return o.KlTargetFreeBits(mode, target, _warmup(budget, kl_start, warm_up))

    return ObjectiveSpec(
        f"free-bits-{mode}",
        build,
        f"free bits with a KL target per {mode} (Li et al. 2019): KL counts above it",
        params={
            "target": Param(8.0, 0.0, 20.0, help="KL target, nats (README: 8)"),
            **_warmup_params(0.0, "README: 0 over 10"),
        },
    )


def iwae() -> ObjectiveSpec:
    return ObjectiveSpec(
        "iwae",
        lambda budget, k, max_grad_norm: _methods().Iwae(k, max_grad_norm),
        "importance-weighted bound with K samples (Burda et al. 2016)",
        params={
            "k": Param(5, 2, 50, step=1, log=True, help="samples K"),
            "max_grad_norm": float_param(
                0.0, minimum=0.0, help="gradient clip, 0: none (the reference clips none)"
            ),
        },
    )


def aggressive() -> ObjectiveSpec:
    def build(budget: Any, window, max_inner, check_every, mi_patience, kl_start, warm_up):
        window_steps = round(window * budget.steps_per_epoch)
        warmup = _warmup(budget, kl_start, warm_up)
        return _methods().Aggressive(window_steps, max_inner, check_every, mi_patience, warmup)

    return ObjectiveSpec(
        "aggressive",
        build,
        "aggressive inference-network training (He et al. 2019) until validation MI stops "
        "rising, then plain ELBO",
        params={
            "window": Param(1.0, 0.1, 5.0, help="epochs between validation-MI checks"),
            "max_inner": Param(99, 1, 99, step=1, help="most encoder updates per step"),
            "check_every": int_param(
                0, 1, 50, minimum=0, help="inner updates per check, 0: 15 text / 10 images"
            ),
            "mi_patience": int_param(
                0, 1, 10, minimum=0, help="MI checks below the best to switch, 0: 1 text / 5 images"
            ),
            **_warmup_params(0.1, "README: 0.1 over 10"),
        },
    )


def sa_vae() -> ObjectiveSpec:
    def build(budget: Any, svi_steps, svi_lr, svi_max_grad_norm, svi_momentum, kl_start, warm_up):
        warmup = _warmup(budget, kl_start, warm_up, span="one")
        return _methods().SemiAmortized(svi_steps, svi_lr, svi_max_grad_norm, svi_momentum, warmup)

    return ObjectiveSpec(
        "sa-vae",
        build,
        "semi-amortized VAE (Kim et al. 2018): SVI refinement, trained through it",
        params={
            "svi_steps": Param(20, 1, 40, step=1, help="refinement steps N"),
            "svi_lr": Param(1.0, 0.01, 2.0, log=True, help="refinement step size"),
            "svi_max_grad_norm": Param(
                5.0, 0.5, 20.0, help="clip of each [B, D] SVI gradient (mu, logvar apart)"
            ),
            "svi_momentum": float_param(
                0.5, 0.0, 0.9, minimum=0.0, maximum=1.0, help="refinement momentum"
            ),
            **_warmup_params(0.1, "train_text.py: 0.1, +1/10 per epoch"),
        },
    )


def bn_vae() -> ObjectiveSpec:
    return ObjectiveSpec(
        "bn-vae",
        lambda budget, gamma, kl_start, warm_up: _methods().BnVae(
            gamma, _warmup(budget, kl_start, warm_up)
        ),
        "BN-VAE (Zhu et al. 2020): batch-normalized posterior mean, fixed gamma",
        params={
            "gamma": Param(0.5, 0.1, 2.0, help="fixed BN scale; KL floor gamma^2/2"),
            **_warmup_params(0.0, "README: 0 over 10"),
        },
    )


def delta_vae() -> ObjectiveSpec:
    return ObjectiveSpec(
        "delta-vae",
        lambda budget, delta, min_var, form: _methods().DeltaVae(delta, min_var, form),
        "delta-VAE (Razavi et al. 2019): posterior constrained so KL >= delta per dimension",
        params={
            "delta": float_param(
                0.15, 0.01, 1.0, minimum=0.0, help="committed rate, nats per dimension"
            ),
            "min_var": Param(
                1e-4, 1e-6, 1e-2, log=True, help="lowest posterior variance (form variance)"
            ),
            "form": Param(
                "bn-vae", choices=("bn-vae", "variance"), help="the public code's, or variance only"
            ),
        },
    )


def pretrain_fb() -> ObjectiveSpec:
    def build(budget: Any, pretrain, mode, target, warm_up, start_from):
        return _methods().PretrainFreeBits(
            budget.total_steps, pretrain, mode, target, warm_up, start_from
        )

    return ObjectiveSpec(
        "pretrain-fb",
        build,
        "encoder pretraining (AE), decoder reset, then free bits (Li et al. 2019)",
        params={
            "pretrain": Param(0.5, 0.1, 0.9, help="share of the budget spent as an AE"),
            "mode": Param("dimension", choices=FB_MODES, help="free-bits target per"),
            "target": Param(8.0, 0.0, 20.0, help="KL target, nats (total; README: 8)"),
            "warm_up": Param(0.1, 0.0, 1.0, help="KL warm-up, share of the VAE phase"),
            "start_from": Param(
                "best", choices=("best", "last"), help="AE epoch the VAE phase starts from"
            ),
        },
    )


def mmd_vae() -> ObjectiveSpec:
    return ObjectiveSpec(
        "mmd-vae",
        lambda budget, kl_weight, mmd_weight: _methods().MmdVae(kl_weight, mmd_weight),
        "InfoVAE / MMD-VAE (Zhao et al. 2019): MMD(q(z), p(z)) replaces the KL",
        params={
            "kl_weight": Param(0.0, 0.0, 1.0, help="1 - alpha"),
            "mmd_weight": Param(100.0, 1.0, 1000.0, log=True, help="alpha + lambda - 1"),
        },
    )


def objective_specs() -> list[ObjectiveSpec]:
    """Every remedy's spec, in the order ``bench ls objectives`` lists them."""
    return [
        *beta_vae(),
        cyclical(),
        li_free_bits("example"),
        li_free_bits("batch"),
        iwae(),
        aggressive(),
        sa_vae(),
        bn_vae(),
        delta_vae(),
        pretrain_fb(),
        mmd_vae(),
    ]
