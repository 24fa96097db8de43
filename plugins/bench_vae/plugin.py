"""Registers the MLP VAE and skip-VAE."""

from __future__ import annotations

from bench import ModelSpec, Param, hookimpl
from bench.data import DataInfo
from bench_vae.mlp import MLPVAE

MLP_PARAMS = {
    "latent_dim": Param(20, 2, 64, step=1, help="latent dimensions"),
    "hidden": Param(300, 64, 1024, log=True, step=1, help="hidden units per layer"),
    "enc_layers": Param(2, 1, 3, step=1, help="encoder hidden layers"),
    "dec_layers": Param(2, 1, 4, step=1, help="decoder hidden layers"),
}


def _builder(skip: bool):
    def build(info: DataInfo, **params) -> MLPVAE:
        return MLPVAE(info.shape, skip=skip, **params)

    return build


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            "mlp-vae",
            _builder(skip=False),
            "Bernoulli VAE, MLP encoder/decoder; z enters the first decoder layer only",
            kinds=("image",),
            params=MLP_PARAMS,
        )
    )
    register(
        ModelSpec(
            "mlp-skip-vae",
            _builder(skip=True),
            "skip-VAE: z enters every decoder layer and the output layer",
            kinds=("image",),
            params=MLP_PARAMS,
        )
    )
