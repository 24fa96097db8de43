"""The field's collapse remedies as objectives, and the ``remedies`` suite that runs them side by
side under the same estimators (docs/remedies.md cites each paper and reference code)."""

from __future__ import annotations

from bench import Budget, EvalSettings, Group, Suite, hookimpl
from bench_remedies import paper, specs
from bench_remedies.specs import FB_MODES as FB_MODES  # re-exported: it was defined here

REMEDIES = "remedies"


@hookimpl
def register_objectives(register):
    for spec in specs.objective_specs():
        register(spec)


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
    for scale, group in (("smoke", smoke_group()), *(("quick", g) for g in quick_groups())):
        register(REMEDIES, scale, group)
    for group in paper.paper_groups():
        register(REMEDIES, "paper", group)


def smoke_group() -> Group:
    return Group(
        "mlp",
        datasets=("digits",),
        models=("mlp-vae",),
        objectives=ROWS,
        model_params={"mlp-vae": {"hidden": 32, "latent_dim": 4}},
        objective_params=CPU_METHODS,
        budget=Budget(epochs=2, batch_size=100),
        eval=EvalSettings(iw_samples=10, batch_size=300),
    )


# Every remedy's row against the plain ELBO of its data set (one seed: a difference, no interval).
QUICK_BASELINE = {"objective": "elbo"}


def quick_groups() -> list[Group]:
    mnist = Group(
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
        baseline=QUICK_BASELINE,
    )
    # The collapse suite's quick PTB setting (where the LSTM VAE collapses), on fewer sentences.
    ptb = Group(
        "lstm",
        datasets=("ptb",),
        models=("lstm-vae",),
        objectives=ROWS,
        metrics=(*QUICK_METRICS, "ppl"),
        model_params={"lstm-vae": {"emb_dim": 64, "hidden": 128, "latent_dim": 32}},
        objective_params=cpu_methods(1),
        budget=Budget(
            epochs=1, batch_size=16, lr=5e-3, train_subset=2500, valid_subset=300, test_subset=300
        ),
        eval=EvalSettings(iw_samples=5, batch_size=100),
        baseline=QUICK_BASELINE,
    )
    return [mnist, ptb]
