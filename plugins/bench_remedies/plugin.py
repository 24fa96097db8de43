"""The field's collapse remedies as objectives, and the ``remedies`` suite that runs them side by
side under the same estimators (docs/remedies.md cites each paper and reference code)."""

from __future__ import annotations

from types import ModuleType

from bench_text.plugin import REFERENCE_TEXT_BUDGET

from bench import Budget, EvalSettings, Group, ObjectiveSpec, Param, Suite, hookimpl
from bench_remedies import objectives as o


def _methods() -> ModuleType:
    """bench_remedies.methods (torch, scipy), imported when a run builds one of its methods:
    registering them does not import torch (``bench ls``, ``bench show``)."""
    from bench_remedies import methods

    return methods


REMEDIES = "remedies"
FB_MODES = ("example", "batch", "dimension")


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
            lambda budget, cycles, ratio: o.CyclicalAnneal(budget.total_steps, cycles, ratio),
            "cyclical KL annealing (Fu et al. 2019): `cycles` linear ramps over the budget",
            params={
                "cycles": Param(4, 1, 10, step=1, help="number of cycles M"),
                "ratio": Param(0.5, 0.1, 1.0, help="share R of each cycle spent ramping"),
            },
        )
    )
    for mode in ("example", "batch"):
        register(
            ObjectiveSpec(
                f"free-bits-{mode}",
                lambda budget, target, mode=mode: o.KlTargetFreeBits(mode, target),
                f"free bits with a KL target per {mode} (Li et al. 2019): KL counts above it",
                params={"target": Param(3.0, 0.0, 20.0, help="KL target, nats")},
            )
        )
    register(
        ObjectiveSpec(
            "iwae",
            lambda budget, k: _methods().Iwae(k),
            "importance-weighted bound with K samples (Burda et al. 2016)",
            params={"k": Param(5, 2, 50, step=1, log=True, help="samples K")},
        )
    )
    register(
        ObjectiveSpec(
            "aggressive",
            lambda budget, window, max_inner, check_every: _methods().Aggressive(
                max(1, round(window * budget.steps_per_epoch)), max_inner, check_every
            ),
            "aggressive inference-network training (He et al. 2019), then plain ELBO",
            params={
                "window": Param(1.0, 0.1, 5.0, help="epochs per bound check for the switch"),
                "max_inner": Param(100, 1, 100, step=1, help="most encoder updates per step"),
                "check_every": Param(15, 1, 50, step=1, help="inner updates per bound check"),
            },
        )
    )
    register(
        ObjectiveSpec(
            "sa-vae",
            lambda budget, svi_steps, svi_lr, svi_max_grad_norm: _methods().SemiAmortized(
                svi_steps, svi_lr, svi_max_grad_norm
            ),
            "semi-amortized VAE (Kim et al. 2018): SVI refinement, trained through it",
            params={
                "svi_steps": Param(20, 1, 40, step=1, help="refinement steps N"),
                "svi_lr": Param(1.0, 0.01, 2.0, log=True, help="refinement step size"),
                "svi_max_grad_norm": Param(5.0, 0.5, 20.0, help="per-example gradient clip"),
            },
        )
    )
    register(
        ObjectiveSpec(
            "bn-vae",
            lambda budget, gamma: _methods().BnVae(gamma),
            "BN-VAE (Zhu et al. 2020): batch-normalized posterior mean, fixed gamma",
            params={"gamma": Param(0.5, 0.1, 2.0, help="fixed BN scale; KL floor gamma^2/2")},
        )
    )
    register(
        ObjectiveSpec(
            "delta-vae",
            lambda budget, delta, min_var: _methods().DeltaVae(delta, min_var),
            "delta-VAE (Razavi et al. 2019): posterior variances bounded so KL >= delta",
            params={
                "delta": Param(5.0, 0.1, 30.0, help="committed rate, nats per example"),
                "min_var": Param(1e-4, 1e-6, 1e-2, log=True, help="lowest posterior variance"),
            },
        )
    )
    register(
        ObjectiveSpec(
            "pretrain-fb",
            lambda budget, pretrain, mode, target, warm_up: _methods().PretrainFreeBits(
                budget.total_steps, pretrain, mode, target, warm_up
            ),
            "encoder pretraining (AE), decoder reset, then free bits (Li et al. 2019)",
            params={
                "pretrain": Param(0.5, 0.1, 0.9, help="share of the budget spent as an AE"),
                "mode": Param("dimension", choices=FB_MODES, help="free-bits target per"),
                "target": Param(3.0, 0.0, 20.0, help="KL target, nats (total)"),
                "warm_up": Param(0.1, 0.0, 1.0, help="KL warm-up, share of the rest"),
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

# Cheap settings for the inner loops at the CPU scales; the paper scale uses the defaults
# (the references' values).
CPU_METHODS = {
    "iwae": {"k": 3},
    "aggressive": {"window": 0.25, "max_inner": 8, "check_every": 2},
    "sa-vae": {"svi_steps": 2},
}


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
            objective_params=CPU_METHODS,
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
                seeds=(0, 1, 2),
                budget=text_paper,
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
            seeds=(0, 1, 2),
            budget=Budget(epochs=100, batch_size=50, patience=10),
            eval=EvalSettings(iw_samples=500, batch_size=100),
        ),
    )
