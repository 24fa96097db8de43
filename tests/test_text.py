"""Text plugin: tokenization, batching, masks, the LSTM decoders, perplexity and the suite rows."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from bench_text import corpus, lstm
from bench_text.batching import TextSplit, TokenBatch
from bench_text.lstm import LSTMVAE
from bench_text.metrics import perplexity, ppl

from bench import plugins
from bench.data import DataInfo
from bench.errors import DataError
from bench.evaluation import EvalContext
from bench.suites import EvalSettings
from bench.testing import check_model
from tests.helpers.data import DATA_ROOT
from tests.helpers.suites import group_toml, suite_toml

SENTENCES = [
    "the cat sat on the mat",
    "a dog barked",
    "the dog sat",
    "cats and dogs and cats",
    "on the mat the cat sat again today",
]


def tiny_model(vocab: int, skip: bool, layers: int = 1, seed: int = 0) -> LSTMVAE:
    torch.manual_seed(seed)
    model = LSTMVAE(
        vocab,
        0,
        latent_dim=4,
        emb_dim=8,
        hidden=12,
        enc_layers=1,
        dec_layers=layers,
        dec_dropout=0.5,
        init_range=0.1,
        skip=skip,
    )
    return model.eval()


@pytest.fixture
def vocab() -> corpus.Vocab:
    return corpus.Vocab.build([s.split() for s in SENTENCES])


@pytest.fixture
def split(vocab) -> TextSplit:
    return corpus.pack([vocab.encode(s.split()) for s in SENTENCES])


# ---- tokenization and batching -------------------------------------------------------------


def test_tokenization_round_trips(vocab):
    for s in SENTENCES:
        ids = vocab.encode(s.split())
        assert ids[0] == vocab.bos_id and ids[-1] == vocab.eos_id
        assert vocab.decode(ids) == s.split()
    # Out-of-vocabulary words and the corpora's own rare-word markers all become <unk>.
    ids = vocab.encode(["the", "zebra", "<unk>", "_UNK"])
    assert ids[2:5] == [vocab.unk_id] * 3
    assert vocab.decode(ids) == ["the", corpus.UNK, corpus.UNK, corpus.UNK]
    assert vocab.itos[: len(corpus.SPECIALS)] == list(corpus.SPECIALS)


def test_vocab_is_frequency_ordered_and_capped():
    v = corpus.Vocab.build([["b", "a", "b", "c", "b", "a"]], max_size=6)
    assert v.itos[4:] == ["b", "a"]  # "c" (count 1) is cut by max_size
    assert corpus.Vocab.build([["b", "a", "b", "c"]], min_freq=2).itos[4:] == ["b"]


def test_batches_cover_split_bucketed_and_trimmed(split):
    lengths = split.lengths.tolist()
    for shuffle in (False, True):
        seen = []
        gen = torch.Generator().manual_seed(3)
        for x, y in split.batches(2, shuffle=shuffle, generator=gen):
            assert y is None
            assert isinstance(x, TokenBatch)
            assert x.ids.shape[1] == int(x.lengths.max())  # trimmed to its longest sentence
            for row, n in zip(x.ids, x.lengths.tolist(), strict=True):
                assert (row[n:] == split.pad_id).all() and (row[:n] != split.pad_id).all()
                seen.append((n, tuple(row[:n].tolist())))
        expected = sorted((n, tuple(split.ids[i, :n].tolist())) for i, n in enumerate(lengths))
        assert sorted(seen) == expected
    # Without shuffling the batches run through the sentences shortest first.
    widths = [x.ids.shape[1] for x, _ in split.batches(2)]
    assert widths == sorted(widths)
    assert len(split.subset(3)) == 3 and split.total_tokens == sum(n - 1 for n in lengths)


# ---- the model: masks, K samples, skip connections -----------------------------------------


def test_padding_is_masked_out_of_the_likelihood(vocab, split):
    model = tiny_model(len(vocab), skip=True)
    x = next(split.batches(len(split)))[0]  # one padded batch of every sentence
    z = torch.randn(3, len(x), model.latent_dim)
    batched = model.log_likelihood(x, z)
    for i in range(len(x)):
        n = int(x.lengths[i])
        alone = TokenBatch(x.ids[i : i + 1, :n], x.lengths[i : i + 1])
        torch.testing.assert_close(
            model.log_likelihood(alone, z[:, i : i + 1])[:, 0], batched[:, i], rtol=1e-5, atol=1e-4
        )
    # Whatever sits in the padding changes nothing, in the encoder or the decoder.
    noisy = x.ids.clone()
    noisy[~(torch.arange(x.ids.shape[1]) < x.lengths.unsqueeze(1))] = 5
    noisy_x = TokenBatch(noisy, x.lengths)
    torch.testing.assert_close(model.log_likelihood(noisy_x, z), batched)
    torch.testing.assert_close(model.encode(noisy_x)[0], model.encode(x)[0])
    assert model.num_tokens(x).tolist() == [n - 1 for n in x.lengths.tolist()]


@pytest.mark.parametrize("budget", [None, 40])
@pytest.mark.parametrize("skip", [False, True])
def test_models_keep_the_contract(vocab, split, monkeypatch, budget, skip):
    """bench.testing's check: shapes for K = 1 and K > 1 with each sample scored as if alone
    (also on the sliced path used for large K * B), num_tokens, no host reads, gradients."""
    if budget is not None:
        monkeypatch.setattr(lstm, "LOGIT_BUDGET", budget * len(vocab))
    model = tiny_model(len(vocab), skip=skip, layers=2)
    check_model(model, next(split.batches(len(split)))[0], samples=5)


@pytest.mark.parametrize("layers", [1, 2])
def test_skip_decoder_sees_z_at_the_softmax_and_plain_does_not(layers):
    z1, z2 = torch.randn(2, 3, 4)
    h = torch.randn(3, 5, 12)
    plain = tiny_model(20, skip=False, layers=layers).decoder
    skip = tiny_model(20, skip=True, layers=layers).decoder
    torch.testing.assert_close(plain.project(h, z1), plain.project(h, z2))
    assert not torch.allclose(skip.project(h, z1), skip.project(h, z2))
    # Layer inputs: z reaches every layer of the skip decoder, only the first of the plain one.
    emb, d = 8, 4
    assert [r.input_size for r in plain.rnns] == [emb + d] + [12] * (layers - 1)
    assert [r.input_size for r in skip.rnns] == [emb + d] + [12 + d] * (layers - 1)


def test_cutting_the_lstm_path_leaves_z_only_in_the_skip_decoder(vocab, split):
    """With z's route into the LSTM (h0 and the input concatenation) zeroed, the plain VAE's
    likelihood no longer depends on z; the skip-VAE's still does, through the softmax."""
    x = next(split.batches(len(split)))[0]
    z = torch.randn(2, len(x), 4)
    for skip in (False, True):
        model = tiny_model(len(vocab), skip=skip)
        with torch.no_grad():
            model.decoder.init_h.weight.zero_()
            model.decoder.init_h.bias.zero_()
            model.decoder.rnns[0].weight_ih_l0[:, 8:].zero_()  # the z columns of layer 1
        ll = model.log_likelihood(x, z)
        assert torch.allclose(ll[0], ll[1]) is not skip


# ---- perplexity --------------------------------------------------------------------------


def test_perplexity_by_hand():
    # Two sentences: NLL 3 nats over 2 tokens and 5 nats over 4 tokens -> exp(8 / 6).
    assert perplexity(torch.tensor([3.0, 5.0]), torch.tensor([2, 4])) == pytest.approx(
        math.exp(8 / 6)
    )


def test_ppl_of_a_uniform_model_is_the_vocabulary_size(vocab, split):
    """All-zero output logits make p(x|z) uniform, and a posterior equal to the prior makes
    every importance weight 1, so the IW-NLL is exactly (tokens) * log V: PPL = V. Padding is
    not counted (split.total_tokens excludes it)."""
    model = tiny_model(len(vocab), skip=True)
    with torch.no_grad():
        model.decoder.out.weight.zero_()
        model.decoder.out.bias.zero_()
        model.encoder.head.weight.zero_()
        model.encoder.head.bias.zero_()
    ctx = EvalContext(model, split, EvalSettings(iw_samples=7, batch_size=2), torch.device("cpu"))
    value = ppl(ctx)
    assert value.settings["tokens"] == split.total_tokens
    assert value.value == pytest.approx(len(vocab), rel=1e-5)
    nll = -ctx.iw_log_likelihood()
    assert float(nll.sum()) == pytest.approx(split.total_tokens * math.log(len(vocab)), rel=1e-5)


def test_ppl_is_blank_for_models_without_tokens():
    from bench_vae.mlp import MLPVAE

    from bench.data import TensorSplit

    model = MLPVAE((1, 4, 4), 2, 8, 1, 1, skip=False)
    split = TensorSplit(torch.rand(6, 1, 4, 4).round())
    ctx = EvalContext(model, split, EvalSettings(iw_samples=2, batch_size=3), torch.device("cpu"))
    value = ppl(ctx)
    assert value.value is None and "skipped" in value.settings


# ---- data sets ---------------------------------------------------------------------------


def write_lines(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines))


def test_ptb_loader_reads_tokenizes_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    write_lines(data / "ptb" / "ptb.train.txt", [" the cat sat ", "", " a <unk> dog ran far away "])
    write_lines(data / "ptb" / "ptb.valid.txt", [" the dog sat "])
    write_lines(data / "ptb" / "ptb.test.txt", [" a zebra sat "])
    splits = corpus.load_ptb(data)
    vocab = splits.info.extra["vocab"]
    assert splits.info.kind == "text" and splits.info.vocab_size == len(vocab) == 4 + 8
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (2, 1, 1)  # "" dropped
    v = corpus.Vocab(vocab[4:])
    assert v.decode(splits.test.ids[0]) == ["a", corpus.UNK, "sat"]
    cached = list((tmp_path / "cache" / "derived" / "text").glob("ptb-*.pt"))
    assert len(cached) == 1
    # A second load comes from the cache and gives the same ids; max_len drops long ones.
    again = corpus.load_ptb(data)
    assert torch.equal(again.train.ids, splits.train.ids)
    short = corpus.load_ptb(data, max_len=3)
    assert len(short.train) == 1 and "dropped over 3 words: train 1" in short.notes


def test_missing_ptb_offline_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    with pytest.raises(DataError, match="BENCH_OFFLINE"):
        corpus.load_ptb(tmp_path / "empty")


def test_yahoo_needs_train_file_and_valid_train_variant_says_what_it_does(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    write_lines(data / "yahoo" / "valid.txt", [f"doc {i} about _UNK things" for i in range(10)])
    write_lines(data / "yahoo" / "test.txt", ["doc about stuff", "another doc"])
    with pytest.raises(DataError, match="yahoo-valid-train"):
        corpus.load_yahoo(data)
    splits = corpus.load_yahoo_valid_train(data, holdout=3)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (7, 3, 2)
    assert "trained on valid.txt" in splits.notes and "tested on test.txt" in splits.notes
    v = corpus.Vocab(splits.info.extra["vocab"][4:])
    assert v.decode(splits.valid.ids[0]) == ["doc", corpus.UNK, "about", corpus.UNK, "things"]
    # Given the full layout (Yang et al.'s file names), the plain data set uses all three.
    write_lines(data / "yahoo" / "yahoo.train.txt", ["a b c", "b c d", "c d e", "d e f"])
    full = corpus.load_yahoo(data)
    assert (len(full.train), len(full.valid), len(full.test)) == (4, 10, 2)
    assert full.info.extra["vocab"][4:] == ["c", "d", "b", "e", "a", "f"]  # from train only


@pytest.mark.skipif(
    not (DATA_ROOT / "ptb" / "ptb.train.txt").exists(),
    reason=f"no PTB files in {DATA_ROOT} (set BENCH_DATA_DIR)",
)
def test_real_ptb_sizes_and_vocabulary(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    splits = corpus.load_ptb(DATA_ROOT)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (42068, 3370, 3761)
    # 10k word types in the files, one of them <unk>, plus <pad> <s> </s>.
    assert splits.info.vocab_size == 10002


# ---- registration and the suite -------------------------------------------------------------


def test_registered_items_and_collapse_rows(fresh_plugins, tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))  # no Yahoo training file here
    regs = plugins.registries()
    for name in ("ptb", "yahoo", "yahoo-valid-train", "text-synthetic"):
        assert regs.datasets.get(name).kind == "text"
    assert regs.models.get("lstm-skip-vae").kinds == ("text",)
    assert regs.models.get("lstm-skip-vae-ref").kinds == ("text",)
    assert regs.metrics.get("ppl").direction == "min"
    assert "</s>" in regs.metrics.get("ppl").description
    suite = regs.suites.get("collapse")
    text = {
        scale: [g for g in suite.groups[scale] if g.plugin == "text"]
        for scale in ("smoke", "quick", "paper", "paper-yahoo-small")
    }
    assert all(text.values())
    assert text["smoke"][0].datasets == ("text-synthetic",)
    assert {d for g in text["quick"] for d in g.datasets} == {"ptb"}
    paper = {d: g for g in text["paper"] for d in g.datasets}
    assert set(paper) == {"ptb"}  # Yahoo without its 100k training file leaves `paper`...
    small = {d: g for g in text["paper-yahoo-small"] for d in g.datasets}
    assert set(small) == {"yahoo-valid-train"}  # ...for a scale that says what it is
    for g in [*paper.values(), *small.values()]:
        b = g.budget
        assert (b.optimizer, b.lr, b.grad_clip, b.epochs, b.batch_size) == ("sgd", 1.0, 5.0, 30, 32)
        assert (b.lr_decay, b.lr_decay_after, b.lr_decay_sticky, b.min_lr) == (0.5, 15, True, 0.03)
        assert g.objective_params["kl-anneal-ref"] == {"beta0": 0.1, "epochs": 10.0}
        assert set(g.models) == {"lstm-vae-ref", "lstm-skip-vae-ref"}
        assert set(g.objectives) == {"elbo", "kl-anneal-ref", "free-bits"}
        assert g.seeds == (0, 1, 2, 3, 4)


def test_paper_uses_full_yahoo_when_its_training_file_is_there(
    fresh_plugins, tmp_path, monkeypatch
):
    write_lines(tmp_path / "yahoo" / "train.txt", ["a b c"])
    monkeypatch.setenv("BENCH_DATA_DIR", str(tmp_path))
    suite = plugins.registries().suites.get("collapse")
    paper = {d for g in suite.groups["paper"] if g.plugin == "text" for d in g.datasets}
    assert paper == {"ptb", "yahoo"}
    assert [g.datasets for g in suite.groups["paper-yahoo-small"]] == [("yahoo-valid-train",)]


def test_synthetic_suite_trains_end_to_end(tmp_path, monkeypatch, fresh_plugins):
    """A TOML suite on the synthetic corpus runs through the real runner and records PPL."""
    from bench import leaderboard
    from bench.runner import RunOptions, run_suite
    from bench.suites import load_suite_file

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "t.toml"
    lstm = group_toml(
        "lstm",
        datasets=["text-synthetic"],
        models=["lstm-skip-vae"],
        dataset_params={"text-synthetic": {"train": 64, "valid": 32, "test": 32}},
        model_params={"lstm-skip-vae": {"emb_dim": 8, "hidden": 16, "latent_dim": 4}},
        budget={"epochs": 1, "batch_size": 32},
        eval={"iw_samples": 4, "batch_size": 32},
    )
    path.write_text(suite_toml("t", lstm))
    suite = load_suite_file(path)
    opts = RunOptions(results_dir=tmp_path / "res", device=torch.device("cpu"))
    scale, records = run_suite(suite, None, opts)
    (record,) = records
    assert record["status"] == "finished", record["reason"]
    metrics = record["metrics"]
    assert metrics["ppl"]["value"] > 1 and math.isfinite(metrics["nll"]["value"])
    assert metrics["ppl"]["settings"]["tokens"] > record["split_sizes"]["test"]
    assert "probe_acc" not in metrics  # unlabelled text: the probe is skipped
    board = leaderboard.build(records, suite.name, scale)
    assert "ppl" in [c.name for c in board.columns]


def test_builder_uses_data_info():
    spec = None
    plugins.reset()
    try:
        spec = plugins.registries().models.get("lstm-vae")
        model = spec.build(
            DataInfo("text", vocab_size=30, pad_id=0),
            emb_dim=8,
            hidden=8,
            latent_dim=3,
            enc_layers=1,
            dec_layers=1,
            dec_dropout=0.0,
            init_range=0.1,
        )
    finally:
        plugins.reset()
    assert model.latent_dim == 3 and model.decoder.out.out_features == 30
    assert all(p.abs().max() <= 0.1 for p in model.parameters())
