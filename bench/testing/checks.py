"""Contract checks for plugin items. Each runs the item the way the harness does, collects every
violation (what was called, what was expected, what came back) and raises one
:class:`ContractCheckError` listing them all, so a plugin author fixes everything in one round."""

from __future__ import annotations

import collections
import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from bench.contract import LatentVariableModel, reparameterize
from bench.data import DataInfo, DataSplits, Split
from bench.evaluation import EvalContext
from bench.specs import DatasetSpec, MetricSpec, MetricValue, Objective, resolve_params
from bench.suites import EvalSettings


@dataclass(frozen=True)
class Violation:
    """One broken rule: ``where`` (the call), ``expected`` and ``actual``."""

    where: str
    expected: str
    actual: str

    def __str__(self) -> str:
        return f"{self.where}: expected {self.expected}, got {self.actual}"


class ContractCheckError(AssertionError):
    """A plugin item failed one of the ``check_*`` functions (an AssertionError, so pytest
    reports it as a failed test); ``violations`` lists every broken rule.

    Formerly ``bench.testing.ContractError``, a deprecated alias that still imports. The
    runner's own check before training raises :class:`bench.errors.ModelContractError`."""

    def __init__(self, subject: str, violations: Sequence[Violation]) -> None:
        self.violations = list(violations)
        lines = "\n".join(f"  - {v}" for v in self.violations)
        n = len(self.violations)
        super().__init__(f"{subject} breaks the contract in {n} way{'s' * (n != 1)}:\n{lines}")


class _Report:
    def __init__(self) -> None:
        self.violations: list[Violation] = []

    def add(self, where: str, expected: str, actual: Any) -> None:
        self.violations.append(Violation(where, expected, str(actual)))

    def shape(self, where: str, value: Any, expected: tuple[int, ...]) -> bool:
        """Record a violation unless ``value`` is a tensor of shape ``expected``."""
        if not isinstance(value, Tensor):
            self.add(where, f"a tensor of shape {list(expected)}", type(value).__name__)
            return False
        if tuple(value.shape) != expected:
            self.add(where, f"shape {list(expected)}", f"shape {list(value.shape)}")
            return False
        return True

    def finite(self, where: str, value: Tensor) -> None:
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            self.add(where, "finite values", f"{bad} of {value.numel()} not finite")

    def raise_if_any(self, subject: str) -> None:
        if self.violations:
            raise ContractCheckError(subject, self.violations)


class HostReads(TorchDispatchMode):
    """Counts what reads a tensor's value on the host: ``.item()``, ``float()``, ``bool()``
    (a Python ``if`` on a tensor), ``.tolist()``, ``.numpy()`` and ``.cpu()``. On a GPU each
    is a synchronisation that stalls the device queue; on the CPU it is counted all the same,
    so the check holds wherever the test runs.

    ``with HostReads() as reads: ...`` then ``reads.counts`` maps each read to its count.
    """

    _READ_OPS = ("_local_scalar_dense", "item", "is_nonzero")
    _READ_METHODS = ("tolist", "numpy", "cpu")

    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()
        self._saved: dict[str, Any] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.__name__.startswith(self._READ_OPS):
            self.counts[func.__name__.split(".")[0]] += 1
        return func(*args, **(kwargs or {}))

    def __enter__(self) -> HostReads:
        for name in self._READ_METHODS:
            original = getattr(Tensor, name)
            self._saved[name] = original

            def counted(tensor: Tensor, *a: Any, _name: str = name, _f: Any = original, **k: Any):
                self.counts[_name] += 1
                return _f(tensor, *a, **k)

            setattr(Tensor, name, counted)
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        for name, original in self._saved.items():
            setattr(Tensor, name, original)
        self._saved.clear()
        return super().__exit__(*exc)


@contextmanager
def _mode(model: torch.nn.Module, train: bool) -> Iterator[None]:
    before = model.training
    model.train(train)
    try:
        yield
    finally:
        model.train(before)


def _call(report: _Report, where: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
    try:
        return True, fn()
    except Exception as exc:
        report.add(where, "no exception", f"{type(exc).__name__}: {exc}")
        return False, None


def check_model(
    model: LatentVariableModel,
    batch: Any,
    *,
    samples: int = 3,
    rtol: float = 1e-4,
    atol: float = 1e-4,
    seed: int = 0,
) -> None:
    """Check a model against the contract of :class:`~bench.contract.LatentVariableModel`
    on one batch, in evaluation mode (dropout off) unless stated.

    Checked, each reported with the expected and actual values:

    - ``latent_dim`` is a positive int and the model has parameters;
    - ``encode(x)`` returns ``(mu, logvar)``, each ``[B, D]`` and finite;
    - ``log_likelihood(x, z)`` returns ``[K, B]`` for K = 1 and K = ``samples``, finite, and
      row k of the K-sample call equals a call with that sample alone (the K axis is never
      mixed with the batch axis);
    - ``log_likelihood`` reads nothing back to the host (see :class:`HostReads`);
    - ``prior_log_prob`` gives ``[K, B]`` for ``[K, B, D]`` and ``[B]`` for ``[B, D]``, finite;
    - ``sample_prior(n)`` gives ``[n, D]``;
    - ``decode_mean(z [B, D])``, when defined, gives B examples (the batch's shape for tensor
      batches);
    - ``num_tokens(x)``, when defined, gives ``[B]`` non-negative counts;
    - in training mode, the negative ELBO backpropagates to finite gradients, reaching the
      parameters of both ``encode`` and ``log_likelihood``.

    Args:
        model: the model, on the batch's device.
        batch: one batch ``x`` as the model's data set yields it.
        samples: K for the K-sample checks (> 1).
        rtol: relative tolerance of "sample k scored alone equals row k".
        atol: absolute tolerance of the same.
        seed: seeds the posterior samples.

    Raises:
        ContractCheckError: listing every violation.
    """
    report = _Report()
    name = type(model).__name__
    if not isinstance(model, LatentVariableModel):
        report.add("model", "a bench.LatentVariableModel subclass", type(model).__name__)
        report.raise_if_any(name)
    d = getattr(model, "latent_dim", None)
    if not isinstance(d, int) or isinstance(d, bool) or d < 1:
        report.add("latent_dim", "a positive int", repr(d))
        report.raise_if_any(name)
    params = list(model.parameters())
    if not params:
        report.add("parameters()", "at least one parameter", "none")
        report.raise_if_any(name)
    b = len(batch)
    g = torch.Generator(device=params[0].device).manual_seed(seed)
    with _mode(model, train=False), torch.no_grad():
        ok, out = _call(report, "encode(x)", lambda: model.encode(batch))
        if ok and (not isinstance(out, tuple) or len(out) != 2):
            report.add("encode(x)", "a tuple (mu, logvar)", type(out).__name__)
            ok = False
        if not ok:
            report.raise_if_any(name)
        mu, logvar = out
        for label, t in (("mu", mu), ("logvar", logvar)):
            if report.shape(f"encode(x) {label}", t, (b, d)):
                report.finite(f"encode(x) {label}", t)
        report.raise_if_any(name)

        z = reparameterize(mu, logvar, samples, generator=g)
        with HostReads() as reads:
            ok, ll = _call(
                report, f"log_likelihood(x, z[K={samples}])", lambda: model.log_likelihood(batch, z)
            )
        if reads.counts:
            report.add(
                f"log_likelihood(x, z[K={samples}])",
                "no host reads (.item(), float(), if on a tensor, .tolist(), .cpu())",
                dict(reads.counts),
            )
        where = f"log_likelihood(x, z[K={samples}])"
        if ok and report.shape(where, ll, (samples, b)):
            report.finite(where, ll)
            for k in range(samples):
                ok1, one = _call(
                    report,
                    "log_likelihood(x, z[K=1])",
                    lambda k=k: model.log_likelihood(batch, z[k : k + 1]),
                )
                if not ok1 or not report.shape("log_likelihood(x, z[K=1])", one, (1, b)):
                    break
                if not torch.allclose(one[0].double(), ll[k].double(), rtol=rtol, atol=atol):
                    worst = int((one[0] - ll[k]).abs().argmax())
                    report.add(
                        f"log_likelihood(x, z)[{k}] (sample {k} of a K={samples} call)",
                        f"the value for sample {k} scored alone, "
                        f"{float(one[0, worst]):.6g} at example {worst}",
                        f"{float(ll[k, worst]):.6g}",
                    )
                    break

        ok, lp = _call(report, "prior_log_prob(z [K, B, D])", lambda: model.prior_log_prob(z))
        if ok and report.shape("prior_log_prob(z [K, B, D])", lp, (samples, b)):
            report.finite("prior_log_prob(z [K, B, D])", lp)
        ok, lp1 = _call(report, "prior_log_prob(z [B, D])", lambda: model.prior_log_prob(z[0]))
        if ok:
            report.shape("prior_log_prob(z [B, D])", lp1, (b,))
        ok, zs = _call(report, "sample_prior(5)", lambda: model.sample_prior(5))
        if ok:
            report.shape("sample_prior(5)", zs, (5, d))

        ok, mean = _call(report, "decode_mean(z [B, D])", lambda: model.decode_mean(z[0]))
        if ok and mean is not None:
            expected = tuple(batch.shape) if isinstance(batch, Tensor) else None
            if not isinstance(mean, Tensor):
                report.add("decode_mean(z [B, D])", "None or a tensor", type(mean).__name__)
            elif expected is not None:
                report.shape("decode_mean(z [B, D])", mean, expected)
            elif mean.shape[0] != b:
                report.add("decode_mean(z [B, D])", f"{b} examples", list(mean.shape))

        ok, tokens = _call(report, "num_tokens(x)", lambda: model.num_tokens(batch))
        shaped = ok and tokens is not None and report.shape("num_tokens(x)", tokens, (b,))
        if shaped and bool((tokens < 0).any()):
            report.add("num_tokens(x)", "non-negative counts", tokens.tolist())
    report.raise_if_any(name)

    with _mode(model, train=True):
        model.zero_grad(set_to_none=True)
        mu, logvar = model.encode(batch)
        z = reparameterize(mu, logvar, 1, generator=g)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1)
        loss = (-model.log_likelihood(batch, z)[0] + kl).mean()
        ok, _ = _call(report, "backward of the negative ELBO", loss.backward)
        if ok:
            grads = [p.grad for p in params if p.grad is not None]
            if not grads:
                report.add("backward of the negative ELBO", "gradients", "no parameter got one")
            elif not all(bool(torch.isfinite(gr).all()) for gr in grads):
                report.add("backward of the negative ELBO", "finite gradients", "inf or nan")
            _check_reaches(report, model, batch, params, g)
        model.zero_grad(set_to_none=True)
    report.raise_if_any(name)


def _check_reaches(
    report: _Report, model: LatentVariableModel, batch: Any, params: list, g: torch.Generator
) -> None:
    """Both halves train: some parameter gets a gradient from ``encode`` alone, and some from
    ``log_likelihood`` at a fixed z."""
    model.zero_grad(set_to_none=True)
    mu, logvar = model.encode(batch)
    (mu.sum() + logvar.sum()).backward()
    if not any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params):
        report.add("encode(x)", "a result that depends on the model's parameters", "none")
    model.zero_grad(set_to_none=True)
    p0 = params[0]
    z = torch.randn(1, len(batch), model.latent_dim, generator=g, device=p0.device, dtype=p0.dtype)
    model.log_likelihood(batch, z).sum().backward()
    if not any(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in params):
        report.add("log_likelihood(x, z)", "a result that depends on the parameters", "none")


def check_objective(
    objective: Objective,
    *,
    batch_size: int = 6,
    latent_dim: int = 4,
    steps: Sequence[int] = (0, 1, 10, 100, 10_000),
    seed: int = 0,
) -> None:
    """Check a built objective (what ``ObjectiveSpec.build`` returns) the way the runner calls
    it, at each of ``steps``:

    - ``objective(log_px [B], kl [B, D], step)`` returns a finite scalar tensor;
    - it backpropagates to ``log_px`` with finite, non-zero gradients (the decoder must
      train) and to ``kl`` with finite gradients;
    - it is a mean over the batch, not a sum: the loss of the batch repeated twice is the same;
    - it reads nothing back to the host (see :class:`HostReads`);
    - ``beta(step)`` is a finite, non-negative Python number.

    Args:
        objective: the built objective.
        batch_size: B of the random ``log_px`` and ``kl`` it is called with.
        latent_dim: D of ``kl``.
        steps: the steps it is called at.
        seed: seeds the random inputs.

    Raises:
        ContractCheckError: listing every violation.
    """
    report = _Report()
    g = torch.Generator().manual_seed(seed)
    log_px = -torch.rand(batch_size, generator=g) * 50
    kl = torch.rand(batch_size, latent_dim, generator=g) * 2
    for step in steps:
        where = f"objective(log_px [{batch_size}], kl [{batch_size}, {latent_dim}], step={step})"
        lp = log_px.clone().requires_grad_(True)
        k = kl.clone().requires_grad_(True)
        with HostReads() as reads:
            ok, loss = _call(report, where, lambda lp=lp, k=k, step=step: objective(lp, k, step))
        if reads.counts:
            report.add(where, "no host reads (.item(), float(), ...)", dict(reads.counts))
        if not ok or not report.shape(where, loss, ()):
            continue
        report.finite(where, loss)
        ok, _ = _call(report, f"backward of {where}", loss.backward)
        if ok:
            if lp.grad is None or not bool(lp.grad.abs().sum() > 0):
                report.add(f"d loss / d log_px at step {step}", "non-zero", lp.grad)
            elif not bool(torch.isfinite(lp.grad).all()):
                report.add(f"d loss / d log_px at step {step}", "finite", lp.grad)
            if k.grad is not None and not bool(torch.isfinite(k.grad).all()):
                report.add(f"d loss / d kl at step {step}", "finite", k.grad)
        with torch.no_grad():
            twice = objective(torch.cat([log_px, log_px]), torch.cat([kl, kl]), step)
            if isinstance(twice, Tensor) and not torch.allclose(twice, loss.detach(), rtol=1e-5):
                report.add(
                    f"{where} on the batch repeated twice",
                    f"the same loss {float(loss):.6g} (a mean over the batch)",
                    f"{float(twice):.6g}",
                )
        beta = _call(report, f"beta({step})", lambda step=step: objective.beta(step))[1]
        if isinstance(beta, Tensor) or not isinstance(beta, (int, float)):
            report.add(f"beta({step})", "a Python float", type(beta).__name__)
        elif not math.isfinite(beta) or beta < 0:
            report.add(f"beta({step})", "a finite value >= 0", beta)
    report.raise_if_any(type(objective).__name__)


def check_metric(
    spec: MetricSpec,
    model: LatentVariableModel,
    split: Split,
    *,
    settings: EvalSettings | None = None,
    train: Split | None = None,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> MetricValue:
    """Compute a metric the way the runner does (an :class:`~bench.evaluation.EvalContext`
    over ``split``) and check it:

    - the spec has a valid ``direction`` (``"min"`` or ``"max"``);
    - ``compute`` returns a :class:`~bench.specs.MetricValue`;
    - its value is a finite number, a list of finite numbers, or None;
    - its settings are a JSON-serialisable dict (they are written to run records);
    - a second computation with the same seed gives the same value (runs are reproducible).

    Args:
        spec: the metric's registered spec.
        model: a model keeping the contract (trained or not).
        split: the evaluation split, e.g. a fixture's ``test``.
        settings: estimator settings; small ones (K = 5) by default.
        train: the training split, for metrics that fit on it (the linear probe).
        device: where ``model`` and ``split`` live.
        seed: the run seed the context derives its generators from.

    Returns:
        The metric's value.

    Raises:
        ContractCheckError: listing every violation.
    """
    report = _Report()
    if spec.direction not in ("min", "max"):
        report.add("direction", "'min' or 'max'", repr(spec.direction))
    settings = settings or EvalSettings(iw_samples=5, batch_size=64, probe_train_size=500)
    device = torch.device(device)
    was_training = model.training
    model.eval()

    def compute() -> Any:
        ctx = EvalContext(model, split, settings, device, seed=seed, train=train)
        return spec.compute(ctx)

    try:
        ok, value = _call(report, f"{spec.name}.compute(ctx)", compute)
        if ok and not isinstance(value, MetricValue):
            report.add(f"{spec.name}.compute(ctx)", "a MetricValue", type(value).__name__)
        elif ok:
            _check_metric_value(report, spec.name, value)
            again = _call(report, f"{spec.name}.compute(ctx) again", compute)[1]
            if isinstance(again, MetricValue) and again.value != value.value:
                report.add(
                    f"{spec.name}.compute(ctx) with the same seed",
                    f"the same value {value.value!r}",
                    repr(again.value),
                )
    finally:
        model.train(was_training)
    report.raise_if_any(f"metric {spec.name!r}")
    return value


def _check_metric_value(report: _Report, name: str, value: MetricValue) -> None:
    v = value.value
    where = f"{name} value"
    if v is None:
        pass
    elif isinstance(v, list):
        if not all(_finite_number(x) for x in v):
            report.add(where, "a list of finite numbers", v)
    elif not _finite_number(v):
        report.add(where, "a finite number, a list of them, or None", repr(v))
    if not isinstance(value.settings, dict):
        report.add(f"{name} settings", "a dict", type(value.settings).__name__)
        return
    try:
        json.dumps(value.settings)
    except (TypeError, ValueError) as exc:
        report.add(f"{name} settings", "JSON-serialisable values", exc)


def _finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def check_dataset(
    dataset: DatasetSpec | DataSplits,
    data_dir: str | Path | None = None,
    *,
    batch_size: int = 7,
    **params: Any,
) -> DataSplits:
    """Load a data set (a spec, with its default parameters overlaid by ``params``) or take
    loaded splits, and check them:

    - ``load`` returns :class:`~bench.data.DataSplits` whose ``info`` is a
      :class:`~bench.data.DataInfo` of the spec's ``kind``;
    - every split is non-empty, ``subset(n)`` has n examples and ``to("cpu")`` keeps them;
    - ``batches`` covers the split exactly, shuffled or not, in batches of at most
      ``batch_size``; labels, when present, come one per example;
    - image batches are tensors of shape ``[b, *info.shape]`` with finite values; text data
      sets give ``vocab_size`` and ``pad_id``;
    - labels lie in ``[0, num_classes)``;
    - the validation and test splits give the same batches every time (fixed evaluation data:
      no per-batch binarization there).

    Args:
        dataset: a registered spec (loaded here) or splits already loaded.
        data_dir: the folder a spec's loader reads from (default: the working folder).
        batch_size: the batch size the batches are drawn with.
        **params: the loader's parameters, over its defaults.

    Returns:
        The splits.

    Raises:
        ContractCheckError: listing every violation.
    """
    report = _Report()
    subject = "data set"
    if isinstance(dataset, DatasetSpec):
        subject = f"data set {dataset.name!r}"
        values = resolve_params(dataset.params, params, subject)
        root = Path(data_dir or ".")
        splits = _call(report, "load(data_dir, **params)", lambda: dataset.load(root, **values))[1]
        report.raise_if_any(subject)
    else:
        splits = dataset
    if not isinstance(splits, DataSplits):
        report.add("load(data_dir)", "a bench.data.DataSplits", type(splits).__name__)
        report.raise_if_any(subject)
    info = splits.info
    if not isinstance(info, DataInfo):
        report.add("info", "a bench.data.DataInfo", type(info).__name__)
        report.raise_if_any(subject)
    if isinstance(dataset, DatasetSpec) and info.kind != dataset.kind:
        report.add("info.kind", f"the spec's kind {dataset.kind!r}", repr(info.kind))
    if info.kind == "text" and (info.vocab_size is None or info.pad_id is None):
        report.add("info (text)", "vocab_size and pad_id", f"{info.vocab_size}, {info.pad_id}")
    for split_name in ("train", "valid", "test"):
        _check_split(report, splits, split_name, batch_size)
    report.raise_if_any(subject)
    return splits


def _check_split(report: _Report, splits: DataSplits, name: str, batch_size: int) -> None:
    split = getattr(splits, name)
    n = len(split)
    if n < 1:
        report.add(f"len({name})", ">= 1", n)
        return
    m = min(n, 3)
    if len(split.subset(m)) != m:
        report.add(f"{name}.subset({m})", f"{m} examples", len(split.subset(m)))
    if len(split.to("cpu")) != n:
        report.add(f"{name}.to('cpu')", f"{n} examples", len(split.to("cpu")))
    labels = split.labels
    if labels is not None:
        if len(labels) != n:
            report.add(f"{name}.labels", f"{n} labels", len(labels))
        k = splits.num_classes
        if k is None:
            report.add("num_classes", "the number of classes of a labelled data set", None)
        elif bool((labels < 0).any()) or bool((labels >= k).any()):
            report.add(f"{name}.labels", f"values in [0, {k})", f"{labels.min()}..{labels.max()}")
    info = splits.info
    for shuffle in (False, True):
        g = torch.Generator().manual_seed(0) if shuffle else None
        seen = 0
        for x, y in split.batches(batch_size, shuffle=shuffle, generator=g):
            where = f"{name}.batches({batch_size}, shuffle={shuffle})"
            if not 0 < len(x) <= batch_size:
                report.add(where, f"batches of 1..{batch_size} examples", len(x))
                return
            if y is not None and len(y) != len(x):
                report.add(where, f"{len(x)} labels for {len(x)} examples", len(y))
                return
            if info.kind == "image" and isinstance(x, Tensor):
                if not report.shape(f"{where} x", x, (len(x), *info.shape)):
                    return
                report.finite(f"{where} x", x)
            seen += len(x)
        if seen != n:
            report.add(f"{name}.batches(shuffle={shuffle})", f"{n} examples in all", seen)
    if name != "train":
        first = [x for x, _ in split.batches(batch_size)]
        second = [x for x, _ in split.batches(batch_size)]
        same = all(
            torch.equal(a, b) if isinstance(a, Tensor) else True
            for a, b in zip(first, second, strict=True)
        )
        if not same:
            report.add(
                f"{name}.batches() twice",
                "the same batches (fixed evaluation data)",
                "different values: binarize evaluation splits once",
            )
