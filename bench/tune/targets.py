"""What to tune: the rows of a suite at one scale, each one Optuna study."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench import plugins
from bench.errors import ConfigError
from bench.suites import Cell, Group, Suite


@dataclass(frozen=True)
class Target:
    """One leaderboard row to tune: a group's (dataset, model, objective) at its first seed."""

    base: Cell
    group: Group
    with_group: bool = False  # two groups share this row: the group joins the study name

    @property
    def seeds(self) -> tuple[int, ...]:
        return self.group.seeds

    def study_name(self, multi_objective: bool) -> str:
        c = self.base
        row = f"{c.dataset}/{c.model}/{c.objective}"
        name = f"{c.suite}/{c.scale}/" + (f"{c.group}/{row}" if self.with_group else row)
        return name + ("/nll-mi" if multi_objective else "")

    def slug(self, multi_objective: bool) -> str:
        return self.study_name(multi_objective).replace("/", "__")


def select_targets(
    suite: Suite,
    scale: str | None,
    datasets: Sequence[str] = (),
    models: Sequence[str] = (),
    objectives: Sequence[str] = (),
) -> tuple[str, list[Target]]:
    """The suite's rows at ``scale``, filtered; unknown names fail with suggestions."""
    from bench.runner import select_cells, validate_cells

    regs = plugins.registries()
    for name in datasets:
        regs.datasets.get(name)
    for name in models:
        regs.models.get(name)
    for name in objectives:
        regs.objectives.get(name)
    scale, cells = select_cells(suite, scale)
    groups = {g.name: g for g in suite.groups.get(scale, [])}
    chosen = [
        c
        for c in cells
        if (not datasets or c.dataset in datasets)
        and (not models or c.model in models)
        and (not objectives or c.objective in objectives)
    ]
    if not chosen:
        rows = sorted({f"{c.dataset}/{c.model}/{c.objective}" for c in cells})
        raise ConfigError(
            f"suite {suite.name!r} ({scale}) has no row matching the given --dataset/--model/"
            f"--objective; its rows: {', '.join(rows)}"
        )
    validate_cells(chosen)
    firsts: dict[tuple[str, str, str, str], Cell] = {}
    for c in chosen:
        firsts.setdefault((c.group, c.dataset, c.model, c.objective), c)
    rows: dict[tuple[str, str, str], int] = {}
    for _, *row in firsts:
        rows[tuple(row)] = rows.get(tuple(row), 0) + 1
    return scale, [
        Target(base=c, group=groups[c.group], with_group=rows[key[1:]] > 1)
        for key, c in firsts.items()
    ]
