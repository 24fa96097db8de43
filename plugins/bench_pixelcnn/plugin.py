"""Registers the PixelCNN VAE and skip-VAE, their rows in the ``collapse`` suite, the
``pixelcnn-sweep`` and ``pixelcnn-cpu`` suites, and the sample/reconstruction grids.

The builders import the models (torch) when a run builds one, not when the plugin registers:
``bench ls`` and ``bench show`` stay free of torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench_suites.plugin import (
    COLLAPSE,
    PAPER_OBJECTIVES,
    PAPER_SEEDS,
    REFERENCE_IMAGE_BUDGET,
    REFERENCE_WARMUP,
)

from bench import Budget, EvalSettings, Group, ModelSpec, Param, Suite, hookimpl

if TYPE_CHECKING:
    from bench.data import DataInfo
    from bench.suites import Cell
    from bench_pixelcnn.model import PixelCNNVAE
    from bench_pixelcnn.reference import ReferencePixelCNNVAE

# The SA-VAE / lagging-encoder Omniglot decoder: 12 layers, kernels shrinking from 9 to 3 (the
# ``depth12`` sweep point). Defined here, not in bench_pixelcnn.model, so that registering the
# sweep does not import torch; the model module re-exports it.
SAVAE_KERNELS: tuple[int, ...] = (9, 9, 9, 7, 7, 7, 5, 5, 5, 3, 3, 3)

PLAIN, SKIP = "pixelcnn-vae", "pixelcnn-skip-vae"
MODELS = (PLAIN, SKIP)
REF_PLAIN, REF_SKIP = "pixelcnn-vae-ref", "pixelcnn-skip-vae-ref"
REF_MODELS = (REF_PLAIN, REF_SKIP)
SWEEP = "pixelcnn-sweep"
CPU = "pixelcnn-cpu"
GRIDS_ENV = "BENCH_PIXELCNN_GRIDS"  # "0" turns the per-run grids off

PARAMS = {
    "latent_dim": Param(20, 2, 64, step=1, minimum=1, help="latent dimensions"),
    "layers": Param(8, 1, 16, step=1, minimum=1, help="gated PixelCNN layers"),
    "channels": Param(32, 8, 128, log=True, step=1, minimum=1, help="channels per layer"),
    "kernel": Param(3, choices=(3, 5, 7, 9), help="kernel size of every layer"),
    "kernels": Param(
        None,
        help="per-layer kernel sizes (overrides kernel; one per layer), "
        "e.g. [9,9,9,7,7,7,5,5,5,3,3,3] with layers=12 (the SA-VAE decoder)",
    ),
    "z_channels": Param(
        1, 1, 8, step=1, minimum=1, help="channels of the HxW map z is projected to"
    ),
    "enc_channels": Param(64, 16, 128, log=True, step=1, minimum=1, help="encoder channels"),
    "enc_blocks": Param(
        3, 1, 4, step=1, minimum=1, help="encoder residual blocks (each halves H, W)"
    ),
}

PAPER_EVAL = EvalSettings(iw_samples=500, batch_size=500)


def _builder(skip: bool, reference: bool = False):
    def build(info: DataInfo, **params: Any) -> PixelCNNVAE | ReferencePixelCNNVAE:
        from bench_pixelcnn.model import PixelCNNVAE
        from bench_pixelcnn.reference import ReferencePixelCNNVAE

        cls = ReferencePixelCNNVAE if reference else PixelCNNVAE
        return cls(info.shape, skip=skip, **params)

    return build


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            PLAIN,
            _builder(skip=False),
            "Bernoulli VAE, residual conv encoder, gated PixelCNN decoder; z map concatenated at "
            "the first layer only",
            kinds=("image",),
            params=PARAMS,
        )
    )
    register(
        ModelSpec(
            SKIP,
            _builder(skip=True),
            "skip-VAE with a gated PixelCNN decoder: z map concatenated at every layer (both "
            "stacks) and before the output 1x1 convolution",
            kinds=("image",),
            params=PARAMS,
        )
    )
    for name, skip, what in (
        (REF_PLAIN, False, "VAE: its first layer reads a z map through the masked convolution"),
        (REF_SKIP, True, "skip-VAE: a Linear(z) map into every layer and one beside the output"),
    ):
        register(
            ModelSpec(
                name,
                _builder(skip=skip, reference=True),
                f"the skip-VAE reference code's PixelCNN {what}; BatchNorm residual encoder",
                kinds=("image",),
                params=PARAMS,
            )
        )


# One scale per sweep point, so each point can be run (and its leaderboard read) on its own.
# Leaderboard rows are keyed by the resolved parameters too, so points would not mix anyway.
SWEEP_POINTS: dict[str, dict[str, Any]] = {
    "z2": {"latent_dim": 2},
    "z10": {"latent_dim": 10},
    "z20": {"latent_dim": 20},
    "z50": {"latent_dim": 50},
    "depth4": {"layers": 4},
    "depth12": {"layers": 12, "kernels": list(SAVAE_KERNELS)},
}


@hookimpl
def register_suites(register):
    register(
        Suite(
            SWEEP,
            "reference PixelCNN VAE vs skip-VAE on static MNIST (reference KL warm-up and "
            "protocol, 3 seeds) across latent dimension (z2..z50) and decoder depth (depth4, "
            "8 = z20, depth12 = SA-VAE kernels); one scale per point",
            scales=tuple(SWEEP_POINTS),
            default_scale="z20",
        )
    )
    register(
        Suite(
            CPU,
            "CPU-reduced PixelCNN VAE vs skip-VAE: 4-layer x 16-channel decoder, 3,000 MNIST "
            "training images, 8 epochs; a smoke-sized stand-in, NOT the paper scale",
            scales=("quick",),
            default_scale="quick",
        )
    )


def sweep_groups() -> dict[str, Group]:
    return {
        point: Group(
            "pixelcnn-sweep",
            datasets=("mnist-static",),
            models=REF_MODELS,
            objectives=("kl-anneal-ref",),
            seeds=PAPER_SEEDS,
            model_params={m: dict(params) for m in REF_MODELS},
            objective_params=REFERENCE_WARMUP,
            budget=REFERENCE_IMAGE_BUDGET,
            eval=PAPER_EVAL,
        )
        for point, params in SWEEP_POINTS.items()
    }


CPU_MODEL = {
    "latent_dim": 20,
    "layers": 4,
    "channels": 16,
    "kernels": [7, 5, 3, 3],
    "enc_channels": 16,
    "enc_blocks": 2,
}


@hookimpl
def register_suite_groups(register):
    # Tiny rows on 8x8 digits so `collapse --scale smoke` exercises the whole PixelCNN path.
    tiny = {"latent_dim": 4, "layers": 2, "channels": 8, "enc_channels": 8, "enc_blocks": 1}
    register(
        COLLAPSE,
        "smoke",
        Group(
            "pixelcnn",
            datasets=("digits",),
            models=MODELS,
            objectives=("kl-anneal",),
            seeds=(0,),
            model_params={m: dict(tiny) for m in MODELS},
            objective_params={"kl-anneal": {"beta0": 0.1, "epochs": 1.0}},
            budget=Budget(epochs=2, batch_size=50),
            eval=EvalSettings(iw_samples=20, batch_size=300),
        ),
    )
    register(
        COLLAPSE,
        "paper",
        Group(
            "pixelcnn",
            datasets=("mnist-static", "omniglot"),
            models=REF_MODELS,
            objectives=PAPER_OBJECTIVES,
            seeds=PAPER_SEEDS,
            objective_params=REFERENCE_WARMUP,
            budget=REFERENCE_IMAGE_BUDGET,
            eval=PAPER_EVAL,
            baseline={"model": REF_PLAIN},  # skip-VAE vs VAE, as the collapse suite's
        ),
    )
    for point, group in sweep_groups().items():
        register(SWEEP, point, group)
    register(
        CPU,
        "quick",
        Group(
            "pixelcnn-cpu",
            datasets=("mnist",),
            models=MODELS,
            objectives=("elbo", "kl-anneal"),
            seeds=(0,),
            model_params={m: dict(CPU_MODEL) for m in MODELS},
            objective_params={"kl-anneal": {"beta0": 0.1, "epochs": 3.0}},
            budget=Budget(
                epochs=8,
                batch_size=50,
                lr=1e-3,
                grad_clip=5.0,
                train_subset=3000,
                valid_subset=500,
                test_subset=500,
            ),
            # Small evaluation batches: each IW call scores batch x K (image, z) pairs at once, and
            # on a CPU a few hundred pairs per call run about twice as fast as 12,500.
            eval=EvalSettings(iw_samples=50, batch_size=10, probe_train_size=3000),
        ),
    )


@hookimpl
def on_run_end(cell: Cell, record: dict[str, Any], model: Any, run_dir: Path) -> None:
    from bench_pixelcnn.model import PixelCNNVAE
    from bench_pixelcnn.reference import ReferencePixelCNNVAE

    if not isinstance(model, (PixelCNNVAE, ReferencePixelCNNVAE)):
        return
    if record.get("status") != "finished":
        return
    if os.environ.get(GRIDS_ENV, "1").lower() in {"0", "false", "no"}:
        return
    from bench_pixelcnn.grids import save_grids

    save_grids(cell, record, model, run_dir)
