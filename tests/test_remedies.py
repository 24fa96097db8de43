"""The collapse remedies: each definition pinned (bounds, floors, schedules, update counts),
exact resume, and every method on every registered model, a third-party one included."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from bench_remedies import methods as m
from bench_remedies.objectives import cyclical_beta, free_bits_kl
from bench_remedies.plugin import ROWS

from bench import (
    Budget,
    EvalSettings,
    Group,
    Method,
    ObjectiveSpec,
    Param,
    Suite,
    hookimpl,
    plugins,
)
from bench.data import without_labels
from bench.estimators import gaussian_kl_per_dim
from bench.methods import (
    MethodTraining,
    PosteriorTransformed,
    TrainingBudget,
    assemble,
    build_objective,
    parameter_groups,
)
from bench.runner import TrainStep, build_model, make_optimizer, run_suite
from bench.specs import resolve_params
from bench.suites import expand
from bench.validation import validation_pass
from tests.helpers.models import LinearGaussian
from tests.helpers.plugins import Kill
from tests.helpers.suites import SMALL_MLP, cpu_options, one_group_suite

EXAMPLE = Path(__file__).resolve().parents[1] / "plugins/examples/bench-example-plugin"
TINY = {"mlp-vae": SMALL_MLP}


def suite_of(objectives, epochs=2, objective_params=None) -> Suite:
    group = Group(
        "g",
        ("digits",),
        ("mlp-vae",),
        tuple(objectives),
        metrics=("neg_elbo", "kl", "au"),
        model_params=TINY,
        # Parameters only for the group's own objectives (others are an error).
        objective_params={k: v for k, v in (objective_params or {}).items() if k in objectives},
        budget=Budget(epochs=epochs, batch_size=100, train_subset=300),
        eval=EvalSettings(iw_samples=2, batch_size=300),
    )
    return one_group_suite("rem", group)


# ---- loss reweightings ----------------------------------------------------------------------


def test_cyclical_beta_matches_the_paper_at_cycle_points():
    # T = 100, M = 4: cycles of 25 steps; R = 0.5: beta ramps over 12.5 steps, then holds 1.
    at = {0: 0.0, 5: 0.4, 12: 0.96, 13: 1.0, 24: 1.0, 25: 0.0, 30: 0.4, 75: 0.0, 99: 1.0}
    for step, beta in at.items():
        assert cyclical_beta(step, 100, 4, 0.5) == pytest.approx(beta)
    # R = 1: a full-cycle ramp, (t mod period) / period.
    assert cyclical_beta(37, 90, 3, 1.0) == pytest.approx(7 / 30)


def test_free_bits_modes_mask_below_their_targets():
    kl = torch.tensor([[0.1, 2.0], [1.0, 1.0]])  # example totals 2.1 and 2.0
    assert free_bits_kl(kl, "example", 2.05).tolist() == pytest.approx([2.1, 0.0])
    assert free_bits_kl(kl, "batch", 2.0).tolist() == pytest.approx([2.1, 2.0])
    assert free_bits_kl(kl, "batch", 2.1).tolist() == [0.0, 0.0]
    assert free_bits_kl(kl, "dimension", 1.0).tolist() == pytest.approx([2.0, 1.0 + 1.0])
    assert free_bits_kl(kl, "dimension", 2.1).tolist() == pytest.approx([2.0, 0.0])


# ---- IWAE -----------------------------------------------------------------------------------


def test_iwae_bound_above_elbo_and_tends_to_log_px():
    torch.manual_seed(0)
    model = LinearGaussian(x_dim=4, z_dim=2, s=0.7, q_scale=2.0)
    with torch.no_grad():
        x = torch.randn(32, 4, dtype=torch.float64) * 2
        exact = model.exact_log_px(x)
        mu, logvar = model.encode(x)
        g = torch.Generator().manual_seed(0)
        gaps = []
        for k in (1, 2, 4, 16):  # the expected gap, averaged over repeated draws
            gap = 0.0
            for _ in range(200):
                bound, elbo = m.iwae_bound(model, x, mu, logvar, k, g)
                # Jensen on the same log-weights: log-mean-exp >= mean.
                assert (bound >= elbo - 1e-9).all()
                gap += float((exact - bound).mean()) / 200
            gaps.append(gap)
        bound, _ = m.iwae_bound(model, x, mu, logvar, 4000, g)
    assert gaps[0] > 0.3  # the ELBO is loose with this widened posterior...
    assert all(a > b for a, b in zip(gaps, gaps[1:], strict=False))  # ...IWAE tightens with K
    assert float((exact - bound).abs().mean()) < 0.02  # ...towards log p(x)


# ---- SA-VAE ---------------------------------------------------------------------------------


def test_sa_vae_refinement_raises_the_bound_and_carries_gradient():
    torch.manual_seed(0)
    model = LinearGaussian(x_dim=4, z_dim=2, s=0.7, q_scale=3.0)
    x = torch.randn(16, 4, dtype=torch.float64) * 2
    mu0, logvar0 = model.encode(x)
    mu0 = mu0 + 0.5  # a poor amortized posterior

    def elbo(mu, logvar):  # many fixed draws: common random numbers for both posteriors
        g = torch.Generator().manual_seed(5)
        _, e = m.iwae_bound(model, x, mu.detach(), logvar.detach(), 4000, g)
        return e

    g = torch.Generator().manual_seed(1)
    mu, logvar = m.refine(model, x, mu0, logvar0, 10, 0.05, 5.0, g, create_graph=False)
    assert (elbo(mu, logvar) > elbo(mu0, logvar0)).all()
    # Through the refinement: the refined bound depends on the starting point.
    start = mu0.detach().requires_grad_()
    mu, logvar = m.refine(model, x, start, logvar0.detach(), 3, 0.05, None, g)
    assert torch.autograd.grad(mu.sum(), start)[0].abs().sum().item() > 0


# ---- posterior transforms -------------------------------------------------------------------


def train_steps(objective: str, params: dict, steps: int = 30):
    """Train a tiny MLP VAE on digits with the runner's pieces; yields the step outputs."""
    plugins.reset()
    regs = plugins.registries()
    data = regs.datasets.get("digits").load(Path("."))
    suite = suite_of([objective], objective_params={objective: params})
    cell = expand(suite.name, "s", suite.groups["s"])[0]
    torch.manual_seed(0)
    model = build_model(cell, data, torch.device("cpu"))
    spec = regs.objectives.get(objective)
    budget = TrainingBudget(1, steps)
    method = build_objective(spec, budget, resolve_params(spec.params, params, objective))
    built = assemble(
        method,
        model,
        budget,
        lambda ps: make_optimizer(cell, ps),
        data.train,
        100,
        0,
        5.0,
        lambda mdl, opt: TrainStep(mdl, opt, method.loss, 5.0, torch.device("cpu")),
    )
    batches = without_labels(data.train).batches(100, shuffle=True)
    gen = torch.Generator().manual_seed(0)
    for i, (x, _) in zip(range(steps), batches, strict=False):
        yield built, built.step(x, i, gen)


def test_bn_vae_kl_never_below_its_floor():
    gamma, dims = 0.6, TINY["mlp-vae"]["latent_dim"]
    floor = dims * gamma**2 / 2
    kls = [float(kl.sum(-1).mean()) for _, (_, kl) in train_steps("bn-vae", {"gamma": gamma})]
    assert min(kls) >= floor * (1 - 1e-3)
    assert min(kls) < floor * 1.5  # the floor is near-tight here, not vacuous


@pytest.mark.parametrize("form", ["bn-vae", "variance"])
def test_delta_vae_kl_never_below_delta(form):
    delta = 0.5  # nats per dimension
    steps = list(train_steps("delta-vae", {"delta": delta, "form": form}))
    for _, (_, kl) in steps:
        assert float(kl.min()) >= delta - 1e-4
    transform = steps[-1][0].model.transform
    for raw in (-50.0, 0.0, 50.0):  # any encoder output, even the prior's mean
        mu, logvar = transform(torch.full((3, 4), raw), torch.full((3, 4), raw))
        if form == "variance":
            mu = torch.zeros(3, 4)
        assert float(gaussian_kl_per_dim(mu, logvar).min()) >= delta - 1e-4
    if form == "variance":
        assert math.isclose(
            float(gaussian_kl_per_dim(torch.zeros(1), torch.tensor([math.log(transform.high)]))),
            delta,
            rel_tol=1e-6,
        )


# ---- aggressive training and pretraining, through the runner --------------------------------


def test_aggressive_updates_encoder_more_and_switches_on_validation_mi(fresh_plugins, workdir):
    params = {"aggressive": {"window": 1.0, "max_inner": 6, "check_every": 2, "mi_patience": 1}}
    _, (rec,) = run_suite(suite_of(["aggressive"], 4, params), None, cpu_options(workdir))
    s = rec["method_state"]
    # 300 examples in batches of 100: validation MI after every third step while aggressive.
    steps = [step for step, _ in s["mi_checks"]]
    before = s["switch_step"] or rec["steps"]
    assert steps == list(range(2, before, 3))
    mis = [mi for _, mi in s["mi_checks"]]
    switch = m.mi_switch(mis, 1)
    assert s["switch_step"] == (None if switch is None else steps[switch] + 1)
    # Each aggressive step: 2..6 encoder updates, exactly one decoder update.
    after = rec["steps"] - before
    assert s["decoder_updates"] == rec["steps"]
    assert s["encoder_updates"] - after >= 2 * before


def test_pretraining_resets_the_decoder_exactly_once(fresh_plugins, workdir):
    _, (rec,) = run_suite(suite_of(["pretrain-fb"], 4), None, cpu_options(workdir))
    s = rec["method_state"]
    assert s["resets"] == 1 and s["reset_step"] == 6 and s["unreset_tensors"] == 0
    lines = (workdir / "results/rem/s").glob("*/epochs.jsonl")
    betas = [json.loads(x)["beta"] for x in next(lines).read_text().splitlines()]
    assert betas[:2] == [0.0, 0.0] and betas[-1] > 0
    # The reset touches the decoder and nothing else.
    torch.manual_seed(0)
    spec = plugins.registries().models.get("mlp-vae")
    info = plugins.registries().datasets.get("digits").load(Path(".")).info
    model = spec.build(info, **resolve_params(spec.params, TINY["mlp-vae"], "mlp-vae"))
    groups = parameter_groups(model, torch.rand(5, 1, 8, 8))
    before = [p.detach().clone() for p in model.parameters()]
    assert m.reset_decoder(model, groups["decoder"], groups["encoder"]) == 0
    enc = {id(p) for p in groups["encoder"]}
    for p, old in zip(model.parameters(), before, strict=True):
        assert torch.equal(p, old) == (id(p) in enc)


# ---- the paper scale: each remedy with its reference's settings ----------------------------


def test_paper_scale_runs_each_remedy_once_per_data_set_with_its_reference_settings():
    from bench_remedies import paper
    from bench_text.plugin import REFERENCE_TEXT_BUDGET

    groups = paper.paper_groups()
    for dataset in ("ptb", "yahoo-valid-train", "mnist"):
        listed = [o for g in groups if dataset in g.datasets for o in g.objectives if o != "elbo"]
        assert sorted(listed) == sorted(set(ROWS) - {"elbo"}), dataset
    # Each group trains its baseline, ELBO, the same way.
    assert all("elbo" in g.objectives and g.baseline == {"objective": "elbo"} for g in groups)

    def where(dataset: str, objective: str) -> Group:
        (group,) = [g for g in groups if dataset in g.datasets and objective in g.objectives]
        return group

    # Each reference's own protocol; the remedies' parameters keep their reference defaults.
    assert where("ptb", "sa-vae").budget == REFERENCE_TEXT_BUDGET
    he = where("ptb", "aggressive").budget
    assert (he.optimizer, he.lr, he.epochs, he.lr_decay_patience) == ("sgd", 1.0, 100, 2)
    li = where("yahoo-valid-train", "bn-vae").budget
    assert (li.optimizer, li.lr, li.epochs, li.lr_decay_patience) == ("sgd", 0.5, 100, 5)
    assert where("ptb", "pretrain-fb").budget.epochs == 200
    cyc = where("ptb", "cyclical").budget
    assert (cyc.optimizer, cyc.lr, cyc.epochs, cyc.lr_decay) == ("adam", 1e-3, 40, None)
    iwae = where("mnist", "iwae")
    assert iwae.objective_params == {"iwae": {"k": 50}} and iwae.budget.grad_clip is None
    assert (iwae.budget.epochs, iwae.budget.batch_size) == (3280, 20)
    mmd = where("mnist", "mmd-vae")
    assert mmd.objective_params["mmd-vae"]["mmd_weight"] == 50 * 784
    assert where("mnist", "aggressive").budget.lr_decay_patience == 20
    for g in groups:  # no inner loop is shortened at this scale
        for name in ("sa-vae", "aggressive"):
            assert name not in g.objective_params


# ---- the method hook through the runner ----------------------------------------------------


class Stuck(Method):
    """Two phases; it reaches the second only at ``switch`` (never, when None)."""

    final_phase = "second"

    def __init__(self, switch: int | None) -> None:
        super().__init__()
        self.switch = switch
        self.state["looked"] = []

    def phase(self) -> str:
        return "second" if self.state["looked"] and self.state["looked"][-1][1] else "first"

    def step(self, ctx):
        log_px, kl, _, _ = ctx.forward(ctx.x)
        loss = (-log_px[0] + kl.sum(-1)).mean()
        ctx.update(loss)
        if ctx.last_of_epoch:
            v = ctx.validate()
            reached = self.switch is not None and ctx.step >= self.switch
            self.state["looked"].append([ctx.step, reached, v.mi(), v.kl(), v.au(), v.neg_elbo()])
        return {"loss": loss, "kl": kl}


class StuckPlugin:
    @staticmethod
    @hookimpl
    def register_objectives(register):
        register(
            ObjectiveSpec(
                "stuck",
                lambda budget, switch: Stuck(None if switch < 0 else switch),
                "test method",
                params={"switch": Param(-1)},
            )
        )


def stuck_suite(switch: int, patience: int) -> Suite:
    group = Group(
        "g",
        ("digits",),
        ("mlp-vae",),
        ("stuck",),
        metrics=("neg_elbo", "kl", "mi", "au"),
        model_params=TINY,
        objective_params={"stuck": {"switch": switch}},
        budget=Budget(epochs=4, batch_size=100, train_subset=300, patience=patience),
        eval=EvalSettings(iw_samples=2, batch_size=300),
    )
    return one_group_suite("stuck", group)


def test_a_method_that_never_reaches_its_final_phase_fails_and_holds_the_decisions(
    fresh_plugins, workdir
):
    plugins.register_plugin(StuckPlugin(), "stuck")
    # patience 1 would stop a run after its second epoch; the held decisions keep it going.
    _, (rec,) = run_suite(stuck_suite(-1, 1), None, cpu_options(workdir))
    assert rec["status"] == "failed" and rec["steps"] == 12
    assert rec["best_epoch"] == 0  # no epoch was ever selected (epochs count from 1)
    assert "never reached its final phase 'second'" in rec["reason"]
    assert not rec["metrics"]
    # Validation through the harness's estimators, at the points the method chose.
    looked = rec["method_state"]["looked"]
    assert [x[0] for x in looked] == [2, 5, 8, 11]
    for _, _, mi, kl, au, neg_elbo in looked:
        assert math.isfinite(mi) and kl >= 0 and 0 <= au <= 4 and math.isfinite(neg_elbo)
    # Reaching it at step 5: selection starts there, and the run stands.
    _, (rec,) = run_suite(stuck_suite(5, 10), None, cpu_options(workdir / "2"))
    assert rec["status"] == "finished" and rec["best_epoch"] >= 1
    epochs = (workdir / "2/results/stuck/s").glob("*/epochs.jsonl")
    lines = [json.loads(x) for x in next(epochs).read_text().splitlines()]
    assert len(lines) == 4


# ---- resume, every model --------------------------------------------------------------------

STATEFUL = [n for n in ROWS if n not in ("elbo", "free-bits")]


@pytest.mark.slow
def test_resuming_mid_run_reproduces_every_method(fresh_plugins, workdir):
    cheap = {"sa-vae": {"svi_steps": 2}, "aggressive": {"window": 0.34, "max_inner": 4}}
    suite = suite_of(STATEFUL, 3, cheap)
    run_suite(suite, None, cpu_options(workdir / "ref"))
    plugins.register_plugin(Kill("mlp-vae", 1), "kill")
    for objective in STATEFUL:  # kill every cell after its second epoch, one at a time
        one = suite_of([objective], 3, cheap)
        with pytest.raises(KeyboardInterrupt):
            run_suite(one, None, cpu_options(workdir))
    plugins.unregister_plugin("kill")
    _, records = run_suite(suite, None, cpu_options(workdir, resume=True))
    assert all(r["status"] == "finished" for r in records)
    for run in (workdir / "ref/results/rem/s").iterdir():
        ref = [json.loads(x) for x in (run / "epochs.jsonl").read_text().splitlines()]
        got = (workdir / "results/rem/s" / run.name / "epochs.jsonl").read_text().splitlines()
        got = [json.loads(x) for x in got]
        assert [e["train_loss"] for e in got] == pytest.approx(
            [e["train_loss"] for e in ref], rel=1e-5
        ), run.name
        assert got[-1]["val_neg_elbo"] == pytest.approx(ref[-1]["val_neg_elbo"], rel=1e-5)


def example_plugin():
    sys.path.insert(0, str(EXAMPLE))
    import bench_example_plugin

    return bench_example_plugin


def training(method, model, budget, splits) -> MethodTraining:
    """What the runner would train ``model`` with, Adam at 1e-3 (a method's steps validate on
    a few of ``splits``' validation examples)."""
    if not isinstance(method, Method):
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        return MethodTraining(model, opt, TrainStep(model, opt, method, 5.0, torch.device("cpu")))
    return assemble(
        method,
        model,
        budget,
        lambda ps: torch.optim.Adam(ps, lr=1e-3),
        splits.train,
        6,
        0,
        5.0,
        lambda mdl, opt: TrainStep(mdl, opt, method.loss, 5.0, torch.device("cpu")),
        validation=lambda mdl, step: validation_pass(
            mdl, splits.valid.subset(12), EvalSettings(batch_size=6), 0, step
        ),
    )


@pytest.mark.slow
def test_every_method_trains_every_registered_model(fresh_plugins):
    plugins.register_plugin(example_plugin(), "example")
    regs = plugins.registries()
    assert "linear-decoder-vae" in regs.models
    data = {
        "image": regs.datasets.get("digits").load(Path(".")),
        "text": regs.datasets.get("text-synthetic").load(Path(".")),
    }
    small = {"latent_dim": 3}
    methods = [n for n in regs.objectives.names() if n != "explode"]
    for spec in regs.models:
        splits = data[spec.kinds[0]]
        params = {k: v for k, v in small.items() if k in spec.params}
        params.update({k: 8 for k in ("hidden", "emb_dim", "channels", "enc_channels")})
        params.update(layers=1, enc_blocks=1)
        params = {k: v for k, v in params.items() if k in spec.params}
        x, _ = next(iter(without_labels(splits.train).batches(6)))
        for name in methods:
            torch.manual_seed(0)
            model = spec.build(splits.info, **resolve_params(spec.params, params, spec.name))
            ospec = regs.objectives.get(name)
            budget = TrainingBudget(1, 4)
            method = build_objective(ospec, budget, resolve_params(ospec.params, {}, name))
            if isinstance(method, m.SemiAmortized | m.Aggressive):
                method = type(method)(*([2, 2, 1.0] if name == "sa-vae" else [1, 2, 2]))
            built = training(method, model, budget, splits)
            before = [p.detach().clone() for p in built.model.parameters()]
            loss, kl = built.step(x, 0, torch.Generator().manual_seed(0))
            assert torch.isfinite(loss), (spec.name, name)
            assert kl.shape[0] == len(x)
            changed = any(
                not torch.equal(p, b) for p, b in zip(built.model.parameters(), before, strict=True)
            )
            assert changed, (spec.name, name)
            if isinstance(method, Method) and method.posterior_transform(3) is not None:
                assert isinstance(built.model, PosteriorTransformed)
