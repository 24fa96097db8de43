"""The field's collapse remedies as objectives, and the ``remedies`` suite that runs them side by
side under the same estimators (docs/remedies.md cites each paper and reference code)."""

from __future__ import annotations

from types import ModuleType

from bench_suites.plugin import PAPER_SEEDS
from bench_text.plugin import REFERENCE_TEXT_BUDGET

from bench import (
    Budget,
    EvalSettings,
    Group,
    ObjectiveSpec,
    Param,
    Suite,
    float_param,
    hookimpl,
    int_param,
)
from bench_remedies import objectives as o


def _methods() -> ModuleType:
    """bench_remedies.methods (torch, scipy), imported when a run builds one of its methods:
    registering them does not import torch (``bench ls``, ``bench show``)."""
    from bench_remedies import methods

    return methods


REMEDIES = "remedies"
FB_MODES = ("example", "batch", "dimension")


def _warmup(budget, kl_start: float, warm_up: float, span: str = "rest") -> o.KlWarmup:
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


@hookimpl
def register_objectives(register):
    def beta(budget, beta):
        return o.BetaVae(beta)

    register(
        ObjectiveSpec(
            "beta-vae-high",
            beta,
            "beta-VAE (Higgins et al. 2017) with beta > 1: KL weighted up",
            params={"beta": Param(2.0, 1.0, 10.0, log=True, help="constant KL weight")},
        )
    )
    register(
        ObjectiveSpec(
            "beta-vae-low",
            beta,
            "beta-VAE with beta < 1: KL weighted down",
            params={"beta": Param(0.5, 0.01, 1.0, log=True, help="constant KL weight")},
        )
    )
    register(
        ObjectiveSpec(
            "cyclical",
            lambda budget, cycles, ratio, start, schedule, lr_restarts: _methods().Cyclical(
                budget, cycles, ratio, start, schedule, lr_restarts
            ),
            "cyclical KL annealing (Fu et al. 2019): `cycles` ramps over the budget, each "
            "restarting beta at `start` and a cosine learning rate",
            params={
                "cycles": Param(4, 1, 10, step=1, help="number of cycles M"),
                "ratio": Param(0.5, 0.1, 1.0, help="share R of each cycle spent ramping"),
                "start": float_param(
                    0.1, 0.0, 0.5, minimum=0.0, maximum=1.0, help="beta at each cycle's start"
                ),
                "schedule": Param(
                    "reference",
                    choices=("reference", "paper"),
                    help="beta: the LM script's or eq. 6",
                ),
                "lr_restarts": Param(
                    "epoch", choices=("epoch", "step", "none"), help="cosine lr set per"
                ),
            },
        )
    )
    for mode in ("example", "batch"):
        register(
            ObjectiveSpec(
                f"free-bits-{mode}",
                lambda budget, target, kl_start, warm_up, mode=mode: o.KlTargetFreeBits(
                    mode, target, _warmup(budget, kl_start, warm_up)
                ),
                f"free bits with a KL target per {mode} (Li et al. 2019): KL counts above it",
                params={
                    "target": Param(8.0, 0.0, 20.0, help="KL target, nats (README: 8)"),
                    **_warmup_params(0.0, "README: 0 over 10"),
                },
            )
        )
    register(
        ObjectiveSpec(
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
    )
    register(
        ObjectiveSpec(
            "aggressive",
            lambda budget, window, max_inner, check_every, mi_patience, kl_start, warm_up: (
                _methods().Aggressive(
                    round(window * budget.steps_per_epoch),
                    max_inner,
                    check_every,
                    mi_patience,
                    _warmup(budget, kl_start, warm_up),
                )
            ),
            "aggressive inference-network training (He et al. 2019) until validation MI stops "
            "rising, then plain ELBO",
            params={
                "window": Param(1.0, 0.1, 5.0, help="epochs between validation-MI checks"),
                "max_inner": Param(99, 1, 99, step=1, help="most encoder updates per step"),
                "check_every": int_param(
                    0, 1, 50, minimum=0, help="inner updates per check, 0: 15 text / 10 images"
                ),
                "mi_patience": int_param(
                    0,
                    1,
                    10,
                    minimum=0,
                    help="MI checks below the best to switch, 0: 1 text / 5 images",
                ),
                **_warmup_params(0.1, "README: 0.1 over 10"),
            },
        )
    )
    register(
        ObjectiveSpec(
            "sa-vae",
            lambda budget, svi_steps, svi_lr, svi_max_grad_norm, svi_momentum, kl_start, warm_up: (
                _methods().SemiAmortized(
                    svi_steps,
                    svi_lr,
                    svi_max_grad_norm,
                    svi_momentum,
                    _warmup(budget, kl_start, warm_up, span="one"),
                )
            ),
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
    )
    register(
        ObjectiveSpec(
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
    )
    register(
        ObjectiveSpec(
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
                    "bn-vae",
                    choices=("bn-vae", "variance"),
                    help="the public code's, or variance only",
                ),
            },
        )
    )
    register(
        ObjectiveSpec(
            "pretrain-fb",
            lambda budget, pretrain, mode, target, warm_up, start_from: _methods().PretrainFreeBits(
                budget.total_steps, pretrain, mode, target, warm_up, start_from
            ),
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
    )
    register(
        ObjectiveSpec(
            "mmd-vae",
            lambda budget, kl_weight, mmd_weight: _methods().MmdVae(kl_weight, mmd_weight),
            "InfoVAE / MMD-VAE (Zhao et al. 2019): MMD(q(z), p(z)) replaces the KL",
            params={
                "kl_weight": Param(0.0, 0.0, 1.0, help="1 - alpha"),
                "mmd_weight": Param(100.0, 1.0, 1000.0, log=True, help="alpha + lambda - 1"),
            },
        )
    )


#: Every remedy the suite compares, with plain ELBO and today's free bits as references.
ROWS = (
    "elbo",
    "beta-vae-low",
    "beta-vae-high",
    "cyclical",
    "free-bits",
    "free-bits-example",
    "free-bits-batch",
    "iwae",
    "aggressive",
    "sa-vae",
    "bn-vae",
    "delta-vae",
    "pretrain-fb",
    "mmd-vae",
)


@hookimpl
def register_suites(register):
    register(
        Suite(
            REMEDIES,
            "collapse remedies side by side: beta-VAE, cyclical, free bits, IWAE, aggressive, "
            "SA-VAE, BN-VAE, delta-VAE, pretraining+FB, MMD",
            scales=("smoke", "quick", "paper"),
            default_scale="quick",
        )
    )


# The quick scale leaves out the linear probe: on a loaded 2-core machine it cost two minutes
# of each MLP cell's evaluation (measured), more than the training.
QUICK_METRICS = ("nll", "neg_elbo", "recon", "kl", "kl_per_dim", "mi", "au")

#: The epochs of each reference run whose KL warm-up lasts 10 epochs (sa-vae ``train_text.py``
#: 52; He et al.'s and Li et al.'s configs, and BN-VAE's, 100).
REFERENCE_EPOCHS = {
    "sa-vae": 30,
    "aggressive": 100,
    "bn-vae": 100,
    "free-bits-example": 100,
    "free-bits-batch": 100,
}


def cpu_methods(epochs: int) -> dict[str, dict[str, float]]:
    """The CPU scales' settings: cheap inner loops (the paper scale uses the defaults, the
    references' values), and each 10-epoch KL warm-up shrunk to the same share of this
    budget as of the reference's run."""
    out: dict[str, dict[str, float]] = {
        "iwae": {"k": 3},
        "aggressive": {"window": 0.25, "max_inner": 8, "check_every": 2},
        "sa-vae": {"svi_steps": 2},
    }
    for name, ref_epochs in REFERENCE_EPOCHS.items():
        out.setdefault(name, {})["warm_up"] = round(10.0 * epochs / ref_epochs, 4)
    return out


#: The settings of the two-epoch CPU groups (kept under its old name).
CPU_METHODS = cpu_methods(2)


@hookimpl
def register_suite_groups(register):
    register(
        REMEDIES,
        "smoke",
        Group(
            "mlp",
            datasets=("digits",),
            models=("mlp-vae",),
            objectives=ROWS,
            model_params={"mlp-vae": {"hidden": 32, "latent_dim": 4}},
            objective_params=CPU_METHODS,
            budget=Budget(epochs=2, batch_size=100),
            eval=EvalSettings(iw_samples=10, batch_size=300),
        ),
    )
    register(
        REMEDIES,
        "quick",
        Group(
            "mlp",
            datasets=("mnist",),
            models=("mlp-vae",),
            objectives=ROWS,
            metrics=QUICK_METRICS,
            objective_params=CPU_METHODS,
            budget=Budget(
                epochs=2, batch_size=100, train_subset=10000, valid_subset=1000, test_subset=2000
            ),
            eval=EvalSettings(iw_samples=50, batch_size=1000),
        ),
    )
    # The collapse suite's quick PTB setting (where the LSTM VAE collapses), on fewer sentences.
    register(
        REMEDIES,
        "quick",
        Group(
            "lstm",
            datasets=("ptb",),
            models=("lstm-vae",),
            objectives=ROWS,
            metrics=(*QUICK_METRICS, "ppl"),
            model_params={"lstm-vae": {"emb_dim": 64, "hidden": 128, "latent_dim": 32}},
            objective_params=cpu_methods(1),
            budget=Budget(
                epochs=1,
                batch_size=16,
                lr=5e-3,
                train_subset=2500,
                valid_subset=300,
                test_subset=300,
            ),
            eval=EvalSettings(iw_samples=5, batch_size=100),
        ),
    )
    # The paper's text protocol, as the collapse suite's reference rows run it.
    text_paper = REFERENCE_TEXT_BUDGET
    for name, dataset in (("lstm-ptb", "ptb"), ("lstm-yahoo", "yahoo-valid-train")):
        register(
            REMEDIES,
            "paper",
            Group(
                name,
                datasets=(dataset,),
                models=("lstm-vae", "lstm-skip-vae"),
                objectives=ROWS,
                seeds=PAPER_SEEDS,
                budget=text_paper,
                baseline={"objective": "elbo"},
                eval=EvalSettings(iw_samples=500, batch_size=50),
            ),
        )
    register(
        REMEDIES,
        "paper",
        Group(
            "pixelcnn",
            datasets=("mnist",),
            models=("pixelcnn-vae", "pixelcnn-skip-vae"),
            objectives=ROWS,
            seeds=PAPER_SEEDS,
            budget=Budget(epochs=100, batch_size=50, patience=10),
            baseline={"objective": "elbo"},
            eval=EvalSettings(iw_samples=500, batch_size=100),
        ),
    )
