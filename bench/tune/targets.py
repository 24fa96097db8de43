"""What to tune: the rows of a suite at one scale, each one Optuna study."""

from __future__ import annotations

from dataclasses import dataclass

from bench.selection import CellFilter
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
    suite: Suite, scale: str | None, cell_filter: CellFilter | None = None
) -> tuple[str, list[Target]]:
    """The suite's rows at ``scale`` whose cells pass ``cell_filter`` (``-k``, ``--model``...);
    unknown names fail with suggestions."""
    from bench.runner import select_cells, validate_cells

    scale, cells = select_cells(suite, scale)
    groups = {g.name: g for g in suite.groups.get(scale, [])}
    chosen = (cell_filter or CellFilter()).apply(cells, f"{suite.name}/{scale}")
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
