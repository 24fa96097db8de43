"""The ``collapse`` suite and its MLP rows. Other first-party plugins (PixelCNN, LSTM) add
their own groups to it through ``register_suite_groups``."""

from __future__ import annotations

from bench import Budget, EvalSettings, Group, Suite, hookimpl

COLLAPSE = "collapse"
VAES = ("mlp-vae", "mlp-skip-vae")
OBJECTIVES = ("elbo", "kl-anneal", "free-bits")


@hookimpl
def register_suites(register):
    register(
        Suite(
            COLLAPSE,
            "VAE vs skip-VAE under ELBO, KL annealing and free bits: NLL, KL, MI, AU",
            scales=("smoke", "quick", "paper"),
            default_scale="quick",
        )
    )


@hookimpl
def register_suite_groups(register):
    register(
        COLLAPSE,
        "smoke",
        Group(
            "mlp",
            datasets=("digits",),
            models=VAES,
            objectives=OBJECTIVES,
            seeds=(0,),
            model_params={m: {"hidden": 128, "latent_dim": 8} for m in VAES},
            objective_params={"kl-anneal": {"epochs": 2.0}},
            budget=Budget(epochs=4, batch_size=50),
            eval=EvalSettings(iw_samples=100, batch_size=300),
        ),
    )
    register(
        COLLAPSE,
        "quick",
        Group(
            "mlp",
            datasets=("mnist",),
            models=VAES,
            objectives=OBJECTIVES,
            seeds=(0,),
            objective_params={"kl-anneal": {"epochs": 2.0}},
            # Per-epoch validation on 5k examples keeps the MLP rows near 1 min each on 2 CPU
            # cores; reported figures use the full 10k test set.
            budget=Budget(epochs=3, batch_size=100, valid_subset=5000),
            eval=EvalSettings(iw_samples=100, batch_size=1000),
        ),
    )
    register(
        COLLAPSE,
        "paper",
        Group(
            "mlp",
            datasets=("mnist",),
            models=VAES,
            objectives=OBJECTIVES,
            seeds=(0, 1, 2),
            objective_params={"kl-anneal": {"epochs": 10.0}},
            budget=Budget(epochs=100, batch_size=50, patience=10),
            eval=EvalSettings(iw_samples=500, batch_size=500),
        ),
    )
