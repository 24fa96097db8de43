"""Text corpora: reading with HF ``datasets``, a vocabulary, tokenization and a token cache.

Both corpora are pre-tokenized (whitespace-separated, lower-cased); a line is one example
(a sentence for PTB, a document for Yahoo). The vocabulary is built from the training split
only; rare-word markers already in the files (``<unk>`` in PTB, ``_UNK`` in Yahoo) map to our
``<unk>``. Tokenized arrays are cached under :func:`bench.data.cache_dir`, keyed by the source
files (path, size, mtime) and every option that changes the ids.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.data import (
    DataInfo,
    DataSplits,
    cache_dir,
    data_hint,
    offline,
    reachable,
    source_identity,
)
from bench.errors import ConfigError, DataError, print_warning
from bench.records import atomic_torch_save

if TYPE_CHECKING:  # torch where a corpus is built: the plugin registers without it
    from bench_text.batching import TextSplit

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
SPECIALS = (PAD, BOS, EOS, UNK)
UNK_MARKERS = ("<unk>", "_UNK")
CACHE_VERSION = 1  # bump when tokenization changes so stale caches are not reused
PTB_FILES = {"train": "ptb.train.txt", "valid": "ptb.valid.txt", "test": "ptb.test.txt"}
PTB_HUB = "ptb-text-only/ptb_text_only"  # Mikolov's split on the HF hub, field "sentence"
HUB_HOST = "huggingface.co"
# sha256 of Mikolov's PTB files as widely redistributed; a copy that differs gets a warning.
KNOWN_SHA256 = {
    "ptb.train.txt": "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
    "ptb.valid.txt": "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
    "ptb.test.txt": "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
}


class Vocab:
    """Word <-> id with ``<pad>=0, <s>=1, </s>=2, <unk>=3`` first."""

    def __init__(self, words: Iterable[str]) -> None:
        self.itos: list[str] = list(SPECIALS)
        self.itos += [w for w in words if w not in SPECIALS]
        self.stoi = {w: i for i, w in enumerate(self.itos)}
        for marker in UNK_MARKERS:
            self.stoi.setdefault(marker, self.unk_id)

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.itos)

    @classmethod
    def build(
        cls, sentences: Iterable[Sequence[str]], max_size: int | None = None, min_freq: int = 1
    ) -> Vocab:
        """Words with at least ``min_freq`` occurrences, most frequent first (ties by word so
        the ids are deterministic), at most ``max_size`` entries including the specials."""
        counts = Counter(w for s in sentences for w in s if w not in UNK_MARKERS)
        words = sorted(
            (w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w)
        )
        if max_size is not None:
            words = words[: max(0, max_size - len(SPECIALS))]
        return cls(words)

    def encode(self, words: Sequence[str]) -> list[int]:
        """``<s> w_1 .. w_n </s>`` as ids; unknown words become ``<unk>``."""
        unk = self.unk_id
        return [self.bos_id, *(self.stoi.get(w, unk) for w in words), self.eos_id]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Words of one encoded sentence, without ``<s>``, ``</s>`` and padding."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.bos_id, self.pad_id):
                continue
            out.append(self.itos[i])
        return out


def tokenize(line: str) -> list[str]:
    return line.split()


def pack(encoded: Sequence[Sequence[int]], pad_id: int = 0) -> TextSplit:
    """Encoded sentences -> a padded :class:`TextSplit` (one scatter, no per-row copies)."""
    import torch

    from bench_text.batching import TextSplit

    lengths = torch.tensor([len(s) for s in encoded], dtype=torch.long)
    width = int(lengths.max()) if len(encoded) else 2
    ids = torch.full((len(encoded), width), pad_id, dtype=torch.long)
    if len(encoded):
        flat = torch.tensor([i for s in encoded for i in s], dtype=torch.long)
        rows = torch.repeat_interleave(torch.arange(len(encoded)), lengths)
        starts = torch.cumsum(lengths, 0) - lengths
        cols = torch.arange(len(flat)) - torch.repeat_interleave(starts, lengths)
        ids[rows, cols] = flat
    return TextSplit(ids, lengths, pad_id)


# ---- reading ------------------------------------------------------------------------------


def check_text_file(path: Path) -> None:
    """A text file must end with a newline (a file cut off while copying ends mid-line):
    DataError naming the file. A known file (PTB) that differs from its published checksum
    gets a warning: another preprocessing is allowed, but its numbers are not comparable."""
    data = path.read_bytes()
    known = KNOWN_SHA256.get(path.name)
    if known is not None and hashlib.sha256(data).hexdigest() != known:
        print_warning(
            f"{path} differs from the published {path.name} (sha256; {len(data):,} bytes): "
            "a damaged copy or another preprocessing; results are not comparable with "
            "published PTB numbers"
        )
    if not data.endswith(b"\n"):
        raise DataError(
            f"{path}: does not end with a newline, so its last line is cut off: the file is "
            "truncated, copy it again"
        )


def read_text_files(files: dict[str, Path]) -> dict[str, list[list[str]]]:
    """One tokenized example per non-empty line, via HF ``datasets``' ``text`` builder (works
    offline on local files; its Arrow cache goes under our cache folder). Each file is
    checked first (:func:`check_text_file`)."""
    import datasets

    for split, path in files.items():
        if not path.is_file():
            raise DataError(f"{split} split not found: {path}; {data_hint()}")
        check_text_file(path)
    datasets.disable_progress_bars()
    ds = datasets.load_dataset(
        "text",
        data_files={k: str(v) for k, v in files.items()},
        cache_dir=str(cache_dir() / "hf"),
    )
    return {k: [t for t in (tokenize(x) for x in ds[k]["text"]) if t] for k in files}


def read_hub(name: str, field: str, splits: dict[str, str]) -> dict[str, list[list[str]]]:
    """A corpus from the HF hub (only when not offline). ``splits`` maps ours -> the hub's."""
    import datasets

    if offline():
        raise DataError(f"{name}: local files missing and BENCH_OFFLINE is set")
    if not reachable(HUB_HOST):  # one quick attempt instead of the hub client's retries
        raise DataError(f"{name}: the HF hub ({HUB_HOST}) is not reachable")
    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(name, cache_dir=str(cache_dir() / "hf"))
    except Exception as exc:  # network, missing dataset, script datasets: all the user's to fix
        raise DataError(f"could not load {name!r} from the HF hub: {exc}") from None
    return {
        ours: [tokenize(x) for x in ds[theirs][field] if x.strip()]
        for ours, theirs in splits.items()
    }


# ---- caching and assembly -----------------------------------------------------------------


@dataclass
class Corpus:
    vocab: list[str]
    splits: dict[str, TextSplit]
    dropped: dict[str, int]  # examples over max_len, per split


def _fingerprint(files: dict[str, Path]) -> list[list[str]]:
    return [[k, source_identity(p)] for k, p in sorted(files.items())]


def build_corpus(
    key: dict[str, object],
    read: Callable[[], dict[str, list[list[str]]]],
    train_split: str = "train",
    max_len: int | None = None,
    max_vocab: int | None = None,
    min_freq: int = 1,
) -> Corpus:
    """Tokenize (or load from the cache) a corpus. ``read()`` returns words per split;
    ``key`` identifies the source. Examples with more than ``max_len`` words are dropped
    from every split (counted in ``dropped``)."""
    import torch

    from bench_text.batching import TextSplit

    if max_len is not None and max_len < 1:
        raise ConfigError(f"max_len must be >= 1, got {max_len}")
    if max_vocab is not None and max_vocab <= len(SPECIALS):
        raise ConfigError(f"max_vocab must exceed {len(SPECIALS)} (the special tokens)")
    full_key = {
        **key,
        "max_len": max_len,
        "max_vocab": max_vocab,
        "min_freq": min_freq,
        "train_split": train_split,
        "version": CACHE_VERSION,
    }
    digest = hashlib.sha256(json.dumps(full_key, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / "text" / f"{key.get('name', 'corpus')}-{digest}.pt"
    if path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            splits = {k: TextSplit(v["ids"], v["lengths"]) for k, v in blob["splits"].items()}
            return Corpus(blob["vocab"], splits, blob["dropped"])
        except Exception:  # a damaged cache is rebuilt from the sources
            path.unlink(missing_ok=True)

    words = read()
    dropped = {}
    for split, sents in words.items():
        kept = sents if max_len is None else [s for s in sents if len(s) <= max_len]
        dropped[split] = len(sents) - len(kept)
        words[split] = kept
    vocab = Vocab.build(words[train_split], max_vocab, min_freq)
    splits = {k: pack([vocab.encode(s) for s in sents]) for k, sents in words.items()}
    blob = {
        "vocab": vocab.itos,
        "dropped": dropped,
        "splits": {k: {"ids": s.ids, "lengths": s.lengths} for k, s in splits.items()},
    }
    atomic_torch_save(blob, path)
    return Corpus(vocab.itos, splits, dropped)


def text_info(vocab: list[str], **extra) -> DataInfo:
    return DataInfo(
        "text",
        vocab_size=len(vocab),
        pad_id=Vocab.pad_id,
        bos_id=Vocab.bos_id,
        eos_id=Vocab.eos_id,
        extra={"vocab": vocab, **extra},
    )


def _splits(corpus: Corpus, title: str, max_len: int | None) -> DataSplits:
    """A corpus's train / valid / test splits (no labels), with its notes under ``title``."""
    s = corpus.splits
    notes = _notes(title, corpus, max_len)
    return DataSplits(text_info(corpus.vocab), s["train"], s["valid"], s["test"], None, notes)


def _notes(base: str, corpus: Corpus, max_len: int | None) -> str:
    sizes = ", ".join(f"{k} {len(s):,}" for k, s in corpus.splits.items())
    text = f"{base}; vocabulary {len(corpus.vocab):,} (with <pad> <s> </s> <unk>); {sizes}"
    if any(corpus.dropped.values()):
        text += f"; dropped over {max_len} words: " + ", ".join(
            f"{k} {v}" for k, v in corpus.dropped.items() if v
        )
    return text


# ---- the data sets ------------------------------------------------------------------------


def load_ptb(
    data_dir: Path, max_len: int | None = None, max_vocab: int | None = None, min_freq: int = 1
) -> DataSplits:
    """Mikolov's PTB: ``<data_dir>/ptb/ptb.{train,valid,test}.txt``, else the HF hub."""
    folder = data_dir / "ptb"
    files = {k: folder / v for k, v in PTB_FILES.items()}
    if all(p.is_file() for p in files.values()):
        key = {"name": "ptb", "files": _fingerprint(files)}

        def read() -> dict[str, list[list[str]]]:
            return read_text_files(files)
    else:
        if offline():
            raise DataError(
                f"PTB files not found in {folder} (ptb.train.txt, ptb.valid.txt, ptb.test.txt) "
                f"and BENCH_OFFLINE is set, so the HF hub is not tried; {data_hint()}"
            )
        key = {"name": "ptb", "hub": PTB_HUB}

        def read() -> dict[str, list[list[str]]]:
            try:
                return read_hub(
                    PTB_HUB, "sentence", {"train": "train", "valid": "validation", "test": "test"}
                )
            except DataError as exc:
                missing = [p.name for p in files.values() if not p.is_file()]
                partly = f" ({', '.join(missing)} missing)" if len(missing) < len(files) else ""
                raise DataError(
                    f"PTB not found in {folder}: expected {', '.join(PTB_FILES.values())}"
                    f"{partly}, and {exc}; {data_hint()}"
                ) from None

    corpus = build_corpus(key, read, "train", max_len, max_vocab, min_freq)
    return _splits(corpus, "PTB (Mikolov split)", max_len)


def _yahoo_file(folder: Path, split: str) -> Path:
    """``valid.txt`` or Yang et al.'s ``yahoo.valid.txt``."""
    for name in (f"{split}.txt", f"yahoo.{split}.txt"):
        if (folder / name).is_file():
            return folder / name
    return folder / f"{split}.txt"


def has_yahoo_train(data_dir: Path) -> bool:
    """Whether the 100k-document Yahoo training file is in ``data_dir``."""
    return _yahoo_file(data_dir / "yahoo", "train").is_file()


def load_yahoo(
    data_dir: Path, max_len: int | None = 200, max_vocab: int | None = None, min_freq: int = 1
) -> DataSplits:
    """Yahoo Answers (Yang et al. 2017) with its own train / valid / test files."""
    folder = data_dir / "yahoo"
    files = {k: _yahoo_file(folder, k) for k in ("train", "valid", "test")}
    if not files["train"].is_file():
        raise DataError(
            f"Yahoo training split not found ({files['train']}); with only valid.txt and "
            "test.txt use the data set 'yahoo-valid-train' (trains on valid, tests on test), "
            f"or {data_hint()}"
        )
    corpus = build_corpus(
        {"name": "yahoo", "files": _fingerprint(files)},
        lambda: read_text_files(files),
        "train",
        max_len,
        max_vocab,
        min_freq,
    )
    return _splits(corpus, "Yahoo (Yang et al. 2017)", max_len)


def load_yahoo_valid_train(
    data_dir: Path,
    max_len: int | None = 200,
    max_vocab: int | None = None,
    min_freq: int = 1,
    holdout: int = 1000,
) -> DataSplits:
    """Yahoo without its training file: TRAINS on ``valid.txt`` (all but its last ``holdout``
    documents), VALIDATES on those held-out documents and TESTS on ``test.txt``."""
    folder = data_dir / "yahoo"
    files = {"valid": _yahoo_file(folder, "valid"), "test": _yahoo_file(folder, "test")}
    if holdout < 1:
        raise ConfigError(f"holdout must be >= 1, got {holdout}")

    def read() -> dict[str, list[list[str]]]:
        raw = read_text_files(files)
        source = raw["valid"]
        if holdout >= len(source):
            raise ConfigError(f"holdout {holdout} leaves no training documents of {len(source)}")
        return {"train": source[:-holdout], "valid": source[-holdout:], "test": raw["test"]}

    corpus = build_corpus(
        {"name": "yahoo-valid-train", "files": _fingerprint(files), "holdout": holdout},
        read,
        "train",
        max_len,
        max_vocab,
        min_freq,
    )
    return _splits(
        corpus,
        f"Yahoo: trained on valid.txt minus its last {holdout} documents, validated on those, "
        "tested on test.txt (the 100k training file is not used)",
        max_len,
    )


# ---- a synthetic corpus for smoke runs and tests ------------------------------------------


def synthetic_sentences(
    n: int, seed: int, topics: int = 4, words_per_topic: int = 12, shared_words: int = 8
) -> list[list[str]]:
    """Sentences whose words come mostly from one of ``topics`` word groups, so a latent
    variable has something to encode (the topic) that an LSTM must otherwise infer."""
    rng = random.Random(seed)
    shared = [f"w{i}" for i in range(shared_words)]
    groups = [[f"t{t}_{i}" for i in range(words_per_topic)] for t in range(topics)]
    out = []
    for _ in range(n):
        group = groups[rng.randrange(topics)]
        length = rng.randint(3, 12)
        out.append(
            [rng.choice(group) if rng.random() < 0.7 else rng.choice(shared) for _ in range(length)]
        )
    return out


def load_synthetic(
    data_dir: Path, train: int = 600, valid: int = 150, test: int = 150, seed: int = 0
) -> DataSplits:
    """No files needed: a small topic corpus for smoke runs (``data_dir`` is unused)."""
    words = {
        "train": synthetic_sentences(train, seed),
        "valid": synthetic_sentences(valid, seed + 1),
        "test": synthetic_sentences(test, seed + 2),
    }
    vocab = Vocab.build(words["train"])
    s = {k: pack([vocab.encode(x) for x in v]) for k, v in words.items()}
    return DataSplits(
        text_info(vocab.itos),
        s["train"],
        s["valid"],
        s["test"],
        None,
        f"synthetic topic corpus, seed {seed}, vocabulary {len(vocab)}",
    )
