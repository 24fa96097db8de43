"""First-party metrics. Each uses only the model contract via :class:`EvalContext`."""

from __future__ import annotations

import math

import numpy as np

from bench import MetricSpec, MetricValue, hookimpl
from bench.estimators import active_units, mutual_information
from bench.evaluation import EvalContext


def _neg_elbo(ctx: EvalContext) -> MetricValue:
    p = ctx.posterior
    value = float((-p.log_px + p.kl.sum(-1)).mean())
    return MetricValue(value, {"z_samples": 1, "n": len(p.mu)})


def _recon(ctx: EvalContext) -> MetricValue:
    p = ctx.posterior
    return MetricValue(float(-p.log_px.mean()), {"z_samples": 1, "n": len(p.mu)})


def _kl(ctx: EvalContext) -> MetricValue:
    p = ctx.posterior
    return MetricValue(float(p.kl.sum(-1).mean()), {"n": len(p.mu)})


def _kl_per_dim(ctx: EvalContext) -> MetricValue:
    p = ctx.posterior
    return MetricValue([round(float(v), 6) for v in p.kl.mean(0)], {"n": len(p.mu)})


def _nll(ctx: EvalContext) -> MetricValue:
    ll = ctx.iw_log_likelihood()
    return MetricValue(float(-ll.mean()), {"iw_samples": ctx.settings.iw_samples, "n": len(ll)})


def _mi(ctx: EvalContext) -> MetricValue:
    p = ctx.posterior
    n = len(p.mu)
    g = ctx.generator(4)
    mi = mutual_information(
        p.mu.to(ctx.device),
        p.logvar.to(ctx.device),
        ctx.settings.mi_samples,
        generator=g,
    )
    return MetricValue(
        mi,
        {
            "estimator": "full-set aggregate posterior",
            "n": n,
            "log_n": round(math.log(n), 4),
            "samples_per_x": ctx.settings.mi_samples,
        },
    )


def _au(ctx: EvalContext) -> MetricValue:
    p = ctx.posterior
    return MetricValue(
        active_units(p.mu, ctx.settings.au_threshold),
        {"threshold": ctx.settings.au_threshold, "n": len(p.mu), "of": p.mu.shape[1]},
    )


def _probe(ctx: EvalContext) -> MetricValue:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    train, test = ctx.train_posterior, ctx.posterior
    if train.labels is None or test.labels is None:
        raise ValueError("the probe needs labels")
    scaler = StandardScaler().fit(train.mu.numpy())
    clf = LogisticRegression(max_iter=1000)
    clf.fit(scaler.transform(train.mu.numpy()), train.labels.numpy())
    pred = clf.predict(scaler.transform(test.mu.numpy()))
    acc = float(np.mean(pred == test.labels.numpy()))
    return MetricValue(
        acc,
        {
            "classifier": "logistic regression on posterior means",
            "train_n": len(train.mu),
            "n": len(test.mu),
        },
    )


@hookimpl
def register_metrics(register):
    register(
        MetricSpec(
            "neg_elbo",
            _neg_elbo,
            "min",
            "negative ELBO, one z sample per x",
            label="-ELBO",
            per_epoch=True,
        )
    )
    register(
        MetricSpec(
            "recon", _recon, "min", "reconstruction term -log p(x|z)", label="Recon", per_epoch=True
        )
    )
    register(
        MetricSpec(
            "kl", _kl, "min", "KL(q(z|x) || p(z)), averaged over x", label="KL", per_epoch=True
        )
    )
    register(
        MetricSpec(
            "kl_per_dim",
            _kl_per_dim,
            "min",
            "KL per latent dimension",
            label="KL/dim",
            per_epoch=False,
        )
    )
    register(MetricSpec("nll", _nll, "min", "importance-weighted NLL, K samples", label="NLL"))
    register(
        MetricSpec(
            "mi",
            _mi,
            "max",
            "mutual information I_q(x;z) over the whole set",
            label="MI",
            per_epoch=True,
        )
    )
    register(
        MetricSpec(
            "au", _au, "max", "active units: Var_x E[z|x] >= threshold", label="AU", per_epoch=True
        )
    )
    register(
        MetricSpec(
            "probe_acc",
            _probe,
            "max",
            "linear-probe accuracy of posterior means (labelled data only)",
            label="Probe acc",
            needs_labels=True,
        )
    )
