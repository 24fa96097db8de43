"""The ``collapse`` suite and its MLP rows. Other first-party plugins (PixelCNN, LSTM) add
their own groups to it through ``register_suite_groups``."""

from __future__ import annotations

from bench import Budget, EvalSettings, Group, Suite, hookimpl

COLLAPSE = "collapse"
# Every group of the paper scales (and the remedies suite's) runs these seeds. Five, so that
# the intervals mean something (docs/comparing.md): a 95% t-interval over n seeds is
# t(0.975, n-1)/sqrt(n) seed standard deviations either side, 2.48 at three seeds but 1.24 at
# five (ten would only bring it to 0.72), and the probability of improvement, which needs three
# seeds a side, compares 25 pairs of runs rather than 9.
PAPER_SEEDS = (0, 1, 2, 3, 4)
# The collapse suite compares the skip-VAE with the VAE under each objective.
PAPER_BASELINE = {"model": "mlp-vae-ref"}
# Yahoo rows trained on valid.txt when the 100k training file is absent (bench_text).
PAPER_YAHOO_SMALL = "paper-yahoo-small"
VAES = ("mlp-vae", "mlp-skip-vae")
QUICK_MI_TRAIN = 50_000  # MI (train) of the quick MNIST rows: every training image
OBJECTIVES = ("elbo", "kl-anneal", "free-bits")
# The paper scale: the reference code's models and protocol (docs/paper.md). Free bits is the
# harness's extension; the reference trains with the ELBO, with or without its KL warm-up.
REFERENCE_VAES = ("mlp-vae-ref", "mlp-skip-vae-ref")
PAPER_OBJECTIVES = ("elbo", "kl-anneal-ref", "free-bits")
# Its warm-up: beta from 0.1, 10 epochs (sa-vae train_img.py and skip-vae train_text_skip.py).
REFERENCE_WARMUP = {"kl-anneal-ref": {"beta0": 0.1, "epochs": 10.0}}
# Its image protocol (train_img_skip.py): Adam 1e-3, batch 50, gradient norm clipped at 5,
# every one of 100 epochs trained and the epoch with the best validation -ELBO kept.
REFERENCE_IMAGE_BUDGET = Budget(
    epochs=100, batch_size=50, optimizer="adam", lr=1e-3, grad_clip=5.0, patience=None
)


@hookimpl
def register_suites(register):
    register(
        Suite(
            COLLAPSE,
            "VAE vs skip-VAE under ELBO, KL annealing and free bits: NLL, KL, MI, AU",
            scales=("smoke", "quick", "paper", PAPER_YAHOO_SMALL),
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
            # The test-set MI of these models sits within 0.1 nat of log 10,000 (KL ~20 nats):
            # MI (train) over all 50,000 training images (ceiling log 50,000 = 10.82) ranks
            # them, at about 6 s of CPU per row. One seed per row keeps the scale short on 2
            # cores (the PTB rows, where collapse shows, run three); the paper scale has five.
            eval=EvalSettings(iw_samples=100, batch_size=1000, mi_train_size=QUICK_MI_TRAIN),
            baseline={"model": "mlp-vae"},
        ),
    )
    register(
        COLLAPSE,
        "paper",
        Group(
            "mlp",
            datasets=("mnist-static",),
            models=REFERENCE_VAES,
            objectives=PAPER_OBJECTIVES,
            seeds=PAPER_SEEDS,
            objective_params=REFERENCE_WARMUP,
            budget=REFERENCE_IMAGE_BUDGET,
            eval=EvalSettings(iw_samples=500, batch_size=500),
            baseline=PAPER_BASELINE,
        ),
    )
