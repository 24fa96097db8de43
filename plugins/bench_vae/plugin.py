"""Registers the MLP VAE and skip-VAE.

The builders import the models (torch) when a run builds one, not when the plugin registers:
``bench ls`` and ``bench show`` stay free of torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench import ModelSpec, hookimpl, int_param

if TYPE_CHECKING:
    from bench.data import DataInfo
    from bench_vae.mlp import MLPVAE
    from bench_vae.reference import ReferenceMLPVAE

MLP_PARAMS = {
    "latent_dim": int_param(20, 2, 64, minimum=1, help="latent dimensions"),
    "hidden": int_param(300, 64, 1024, minimum=1, log=True, help="hidden units per layer"),
    "enc_layers": int_param(2, 1, 3, minimum=0, help="encoder hidden layers"),
    "dec_layers": int_param(2, 1, 4, minimum=1, help="decoder hidden layers"),
}


REFERENCE_PARAMS = {
    "latent_dim": MLP_PARAMS["latent_dim"],
    "hidden": int_param(1024, 64, 2048, minimum=1, log=True, help="hidden units per layer"),
}


def _builder(skip: bool, reference: bool = False):
    def build(info: DataInfo, **params) -> MLPVAE | ReferenceMLPVAE:
        from bench_vae.mlp import MLPVAE
        from bench_vae.reference import ReferenceMLPVAE

        cls = ReferenceMLPVAE if reference else MLPVAE
        return cls(info.shape, skip=skip, **params)

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
    for name, skip, what in (
        ("mlp-vae-ref", False, "VAE: z enters the decoder's first layer only"),
        (
            "mlp-skip-vae-ref",
            True,
            "skip-VAE: Linear(z) added to both hidden layers, not the output",
        ),
    ):
        register(
            ModelSpec(
                name,
                _builder(skip=skip, reference=True),
                f"the skip-VAE reference code's MLP {what}; 2 x 1024 units, decoder Linear(z) "
                "then 2 ReLU layers",
                kinds=("image",),
                params=REFERENCE_PARAMS,
            )
        )
