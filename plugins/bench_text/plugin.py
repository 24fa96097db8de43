"""Registers the text data sets, the LSTM VAE and skip-VAE, perplexity, and the text rows of
the ``collapse`` suite at every scale.

The builders import the models (torch) when a run builds one, not when the plugin registers:
``bench ls`` and ``bench show`` stay free of torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench_suites.plugin import (
    COLLAPSE,
    PAPER_OBJECTIVES,
    PAPER_SEEDS,
    PAPER_YAHOO_SMALL,
    REFERENCE_WARMUP,
)

from bench import Budget, DatasetSpec, EvalSettings, Group, MetricSpec, ModelSpec, Param, hookimpl
from bench.data import data_dir
from bench_text import corpus
from bench_text.metrics import PPL_CONVENTION, ppl, ppl_bound

if TYPE_CHECKING:
    from bench.data import DataInfo
    from bench_text.lstm import LSTMVAE

TEXT_PARAMS = {
    "max_len": Param(
        None, 1, 1000, step=1, minimum=1, help="drop examples with more words than this"
    ),
    "max_vocab": Param(
        None,
        100,
        100000,
        step=1,
        minimum=5,
        help="keep the most frequent words (with specials)",
    ),
    "min_freq": Param(
        1, 1, 100, step=1, minimum=1, help="minimum training count for a word to get an id"
    ),
}
YAHOO_PARAMS = {
    **TEXT_PARAMS,
    "max_len": Param(200, 1, 1000, step=1, minimum=1, help=TEXT_PARAMS["max_len"].help),
}

# The paper code's defaults (Kim et al. 2018's text VAE, which the skip-VAE code builds on).
LSTM_PARAMS = {
    "latent_dim": Param(32, 2, 128, step=1, minimum=1, help="latent dimensions"),
    "emb_dim": Param(512, 16, 1024, log=True, step=1, minimum=1, help="word embedding size"),
    "hidden": Param(1024, 16, 2048, log=True, step=1, minimum=1, help="LSTM hidden units"),
    "enc_layers": Param(1, 1, 3, step=1, minimum=1, help="encoder LSTM layers"),
    "dec_layers": Param(1, 1, 3, step=1, minimum=1, help="decoder LSTM layers"),
    "dec_dropout": Param(
        0.5, 0.0, 0.8, minimum=0.0, maximum=1.0, help="dropout on decoder inputs and outputs"
    ),
    "init_range": Param(
        0.1, 0.0, 0.5, minimum=0.0, help="uniform(-r, r) initialisation; 0 keeps torch's"
    ),
}
VAES = ("lstm-vae", "lstm-skip-vae")
REFERENCE_VAES = ("lstm-vae-ref", "lstm-skip-vae-ref")
OBJECTIVES = ("elbo", "kl-anneal", "free-bits")


@hookimpl
def register_datasets(register):
    register(
        DatasetSpec(
            "ptb",
            corpus.load_ptb,
            "Penn Treebank, Mikolov's split, one sentence an example (HF datasets text loader)",
            kind="text",
            sizes="42,068 / 3,370 / 3,761; vocab 10,002",
            params=TEXT_PARAMS,
        )
    )
    register(
        DatasetSpec(
            "yahoo",
            corpus.load_yahoo,
            "Yahoo Answers (Yang et al. 2017), one document an example; needs train.txt",
            kind="text",
            sizes="100,000 / 10,000 / 10,000; vocab from train",
            params=YAHOO_PARAMS,
        )
    )
    register(
        DatasetSpec(
            "yahoo-valid-train",
            corpus.load_yahoo_valid_train,
            "Yahoo TRAINED ON valid.txt (last `holdout` docs validate), TESTED ON test.txt",
            kind="text",
            sizes="9,000 / 1,000 / 10,000; vocab 16,494",
            params={
                **YAHOO_PARAMS,
                "holdout": Param(
                    1000, 100, 5000, step=1, minimum=1, help="valid.txt docs held out"
                ),
            },
        )
    )
    register(
        DatasetSpec(
            "text-synthetic",
            corpus.load_synthetic,
            "synthetic topic sentences (4 topics, 56 words); needs no files (smoke runs)",
            kind="text",
            sizes="600 / 150 / 150; vocab 60",
            params={
                "train": Param(600, 50, 100000, step=1, minimum=1),
                "valid": Param(150, 10, 10000, step=1, minimum=1),
                "test": Param(150, 10, 10000, step=1, minimum=1),
                "seed": Param(0, minimum=0),
            },
        )
    )


def _builder(skip: bool, reference: bool = False):
    def build(info: DataInfo, **params) -> LSTMVAE:
        from bench_text.lstm import LSTMVAE
        from bench_text.reference import ReferenceLSTMVAE

        cls = ReferenceLSTMVAE if reference else LSTMVAE
        return cls(info.vocab_size, info.pad_id, skip=skip, **params)

    return build


@hookimpl
def register_models(register):
    register(
        ModelSpec(
            "lstm-vae",
            _builder(skip=False),
            "LSTM VAE: z concatenated to every decoder input, h0 = Linear(z)",
            kinds=("text",),
            params=LSTM_PARAMS,
        )
    )
    register(
        ModelSpec(
            "lstm-skip-vae",
            _builder(skip=True),
            "skip-VAE: also z concatenated to the LSTM output before the softmax (and every layer)",
            kinds=("text",),
            params=LSTM_PARAMS,
        )
    )
    for name, skip in (("lstm-vae-ref", False), ("lstm-skip-vae-ref", True)):
        register(
            ModelSpec(
                name,
                _builder(skip=skip, reference=True),
                f"the skip-VAE reference code's LSTM {'skip-VAE' if skip else 'VAE'}: as "
                f"{name.removesuffix('-ref')}, but h0 = Linear(z) for the last decoder layer only "
                "(the same model with one layer)",
                kinds=("text",),
                params=LSTM_PARAMS,
            )
        )


@hookimpl
def register_metrics(register):
    register(
        MetricSpec(
            "ppl", ppl, "min", f"perplexity from the IW-NLL: {PPL_CONVENTION}", label="PPL (IW)"
        )
    )
    register(
        MetricSpec(
            "ppl_bound",
            ppl_bound,
            "min",
            "the paper's perplexity bound: exp(sum of -ELBO / sum of tokens), one z per sentence",
            label="PPL bound",
        )
    )


SMALL_CPU = {"emb_dim": 32, "hidden": 64, "latent_dim": 8}
QUICK_CPU = {"emb_dim": 64, "hidden": 128, "latent_dim": 32}
QUICK_TRAIN = 4500
QUICK_SEEDS = (0, 1, 2)


@hookimpl
def register_suite_groups(register):
    register(
        COLLAPSE,
        "smoke",
        Group(
            "lstm",
            datasets=("text-synthetic",),
            models=VAES,
            objectives=OBJECTIVES,
            model_params={m: SMALL_CPU for m in VAES},
            objective_params={"kl-anneal": {"epochs": 2.0}},
            budget=Budget(epochs=3, batch_size=32),
            eval=EvalSettings(iw_samples=20, batch_size=150),
        ),
    )
    # PTB subset, small LSTM, one epoch: sized so the text rows of the quick suite take a few
    # minutes on 2 CPU cores (the 10k-word softmax dominates the cost). Adam at 5e-3 with
    # batches of 16 gives the skip decoder enough steps (282) to start using z at the softmax;
    # at 1e-3, or with SGD at lr 1, both models were still collapsed at this budget (measured).
    register(
        COLLAPSE,
        "quick",
        Group(
            "lstm",
            datasets=("ptb",),
            models=VAES,
            objectives=OBJECTIVES,
            model_params={m: QUICK_CPU for m in VAES},
            objective_params={"kl-anneal": {"epochs": 1.0}},
            # Three seeds: the skip decoder's gain over the collapsed LSTM VAE is small at this
            # budget, so its rows carry 95% intervals and paired differences (docs/comparing.md).
            seeds=QUICK_SEEDS,
            baseline={"model": "lstm-vae"},
            budget=Budget(
                epochs=1,
                batch_size=16,
                lr=5e-3,
                train_subset=QUICK_TRAIN,
                valid_subset=400,
                test_subset=400,
            ),
            eval=EvalSettings(iw_samples=5, batch_size=100),
        ),
    )
    for scale, group in paper_groups(yahoo_full=corpus.has_yahoo_train(data_dir())):
        register(COLLAPSE, scale, group)


# The reference's text protocol (train_text_skip.py lines 52-66, 94-95, 104, 229-230, 262-270):
# SGD lr 1.0, gradient norm clipped at 5, batch 32, at most 30 epochs; from epoch 15 on, the
# first epoch without a better validation bound starts halving lr after every epoch, and
# training stops once lr < 0.03. The best validation -ELBO is kept.
REFERENCE_TEXT_BUDGET = Budget(
    epochs=30,
    batch_size=32,
    optimizer="sgd",
    lr=1.0,
    grad_clip=5.0,
    lr_decay=0.5,
    lr_decay_after=15,
    lr_decay_patience=1,
    lr_decay_sticky=True,
    min_lr=0.03,
)


def paper_groups(yahoo_full: bool) -> list[tuple[str, Group]]:
    """The text rows of the paper scales. Yahoo joins ``paper`` only when its 100k-document
    training file is there; otherwise it runs trained on valid.txt under its own scale."""

    def group(name: str, dataset: str) -> Group:
        return Group(
            name,
            datasets=(dataset,),
            models=REFERENCE_VAES,
            objectives=PAPER_OBJECTIVES,
            seeds=PAPER_SEEDS,
            objective_params=REFERENCE_WARMUP,
            budget=REFERENCE_TEXT_BUDGET,
            eval=EvalSettings(iw_samples=500, batch_size=50),
            baseline={"model": "lstm-vae-ref"},  # skip-VAE vs VAE, as the collapse suite's
        )

    groups = [("paper", group("lstm-ptb", "ptb"))]
    if yahoo_full:
        groups.append(("paper", group("lstm-yahoo", "yahoo")))
    groups.append((PAPER_YAHOO_SMALL, group("lstm-yahoo", "yahoo-valid-train")))
    return groups
