"""``bench.testing.check_method``: every first-party method passes it on an image and a text
model; methods that break the contract (state outside ``state``, host reads, shared
parameters, a record that is not JSON, a wrong KL) are named; ``bench show objective`` says
what an objective builds."""

from __future__ import annotations

import pytest
import torch
from rich.console import Console
from torch import Tensor, nn

from bench import LatentVariableModel, Method, StepContext, plugins
from bench.describe import describe
from bench.methods import TrainingBudget, build_objective
from bench.specs import resolve_params
from bench.testing import (
    ContractCheckError,
    check_method,
    first_batch,
    tiny_image_data,
    tiny_text_data,
)

CHEAP = {"sa-vae": {"svi_steps": 2}, "aggressive": {"max_inner": 3, "window": 0.5}}
SMALL = {"latent_dim": 3, "hidden": 8, "emb_dim": 8}


def methods() -> list[str]:
    regs = plugins.registries()
    return [
        name
        for name in regs.objectives.names()
        if name != "explode" and isinstance(built_method(name), Method)
    ]


def built_method(name: str) -> object:
    spec = plugins.registries().objectives.get(name)
    params = resolve_params(spec.params, CHEAP.get(name, {}), name)
    return build_objective(spec, TrainingBudget(2, 2), params)


def small_model(name: str, data) -> LatentVariableModel:
    spec = plugins.registries().models.get(name)
    params = {k: v for k, v in SMALL.items() if k in spec.params}
    torch.manual_seed(0)
    return spec.build(data.info, **resolve_params(spec.params, params, name))


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mlp-vae", "lstm-vae"])
def test_every_first_party_method_passes_check_method(model):
    data = tiny_text_data() if model.startswith("lstm") else tiny_image_data()
    x = first_batch(data, 6)
    for name in methods():
        check_method(built_method(name), small_model(model, data), x)


class Mlp(LatentVariableModel):
    def __init__(self, shared: bool = False) -> None:
        super().__init__()
        self.latent_dim = 2
        self.enc = nn.Linear(6, 4)
        self.dec = nn.Linear(2, 6)
        self.shared = nn.Linear(6, 6) if shared else None

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.enc(x if self.shared is None else self.shared(x))
        return h[:, :2], h[:, 2:]

    def log_likelihood(self, x: Tensor, z: Tensor) -> Tensor:
        target = x if self.shared is None else self.shared(x)
        return -0.5 * ((target - self.dec(z)) ** 2).sum(-1)


class Forgetful(Method):
    """Counts its steps outside ``state``: a resumed run starts the count again."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        self.count += 1
        log_px, kl, _, _ = ctx.forward(ctx.x)
        loss = (-log_px[0] + self.count * kl.sum(-1)).mean()
        ctx.update(loss)
        return {"loss": loss, "kl": kl}


class Reader(Method):
    """Reads its loss back every step (and, at each epoch's end, validates)."""

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        log_px, kl, _, _ = ctx.forward(ctx.x)
        loss = (-log_px[0] + kl.sum(-1)).mean()
        ctx.update(loss)
        self.state["last"] = float(loss.detach())
        return {"loss": loss, "kl": kl}


class Validating(Method):
    """Asks for validation MI at each epoch's end: those reads are the method's choice."""

    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        log_px, kl, _, _ = ctx.forward(ctx.x)
        loss = (-log_px[0] + kl.sum(-1)).mean()
        ctx.update(loss)
        if ctx.last_of_epoch:
            v = ctx.validate()
            self.state.setdefault("mi", []).append(v.mi())
            self.state.setdefault("au", []).append(v.au())
        return {"loss": loss, "kl": kl}


class Split(Method):
    optimizers = ("encoder", "decoder")


class Tensorful(Method):
    def __init__(self) -> None:
        super().__init__()
        self.state["scale"] = torch.ones(2)


class BadKl(Method):
    def step(self, ctx: StepContext) -> dict[str, Tensor]:
        log_px, kl, _, _ = ctx.forward(ctx.x)
        loss = (-log_px[0] + kl.sum(-1)).mean()
        ctx.update(loss)
        return {"loss": loss, "kl": kl.sum()}


def violations(method: Method, model: LatentVariableModel, **kw: object) -> str:
    with pytest.raises(ContractCheckError) as info:
        check_method(method, model, torch.randn(5, 6), **kw)
    return str(info.value)


def test_check_method_names_each_broken_rule():
    torch.manual_seed(0)
    assert "interrupted after step 1 and resumed" in violations(Forgetful(), Mlp())
    assert "no host reads" in violations(Reader(), Mlp())
    reader = Reader()
    reader.host_reads = True  # declared: its reads are allowed
    check_method(reader, Mlp(), torch.randn(5, 6))
    check_method(Validating(), Mlp(), torch.randn(5, 6))
    msg = violations(Split(), Mlp(shared=True))
    assert "'shared.weight'" in msg and "2: encoder, decoder" in msg
    check_method(Split(), Mlp(), torch.randn(5, 6))
    assert "json.dumps(method.record_state())" in violations(Tensorful(), Mlp())
    assert "step 0: kl" in violations(BadKl(), Mlp())
    with pytest.raises(ValueError, match="epoch's end"):
        check_method(Reader(), Mlp(), torch.randn(5, 6), interrupt_at=1)


def test_check_method_leaves_the_method_and_model_untouched():
    model, method = Mlp(), Validating()
    before = [p.detach().clone() for p in model.parameters()]
    check_method(method, model, torch.randn(5, 6))
    assert method.state == {}
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before, strict=True))


def shown(name: str) -> str:
    console = Console(record=True, width=200)
    console.print(describe("objective", name))
    return console.export_text()


def test_show_objective_says_loss_or_method_and_its_optimizers():
    assert "kind: a loss (bench.Objective)" in shown("elbo")
    text = shown("aggressive")
    assert "kind: a training method" in text and "optimizers: encoder, decoder" in text
    assert "step: its own" in text
    text = shown("pretrain-fb")
    assert "held until phase 'vae'" in text
    text = shown("cyclical")
    assert "optimizers: all" in text and "learning rate: set by the method" in text
    assert "posterior: transformed" in shown("bn-vae")
