"""A run record as the runner writes it, with the fields the leaderboard reads."""

from __future__ import annotations

from bench.suites import Budget, Cell, EvalSettings, fingerprint, resolved_settings


def record(
    model: str = "mlp-vae",
    objective: str = "elbo",
    seed: int = 0,
    dataset: str = "digits",
    model_params: dict | None = None,
    metrics: dict | None = None,
    status: str = "finished",
    budget: Budget | None = None,
) -> dict:
    """A run record as the runner writes it (the fields the leaderboard reads)."""
    cell = Cell(
        "s",
        "custom",
        "g",
        dataset,
        model,
        objective,
        seed,
        {},
        dict(model_params or {}),
        {},
        (),
        budget or Budget(),
        EvalSettings(),
    ).as_dict()
    resolved = resolved_settings(cell)
    values = {"nll": 90.0, "kl": 3.0, "mi": 1.0, "au": 4}
    values.update(metrics or {})
    settings = {"nll": {"iw_samples": 10, "n": 300}, "au": {"threshold": 0.01, "of": 8, "n": 300}}
    return {
        "run_id": f"g__{dataset}__{model}__{objective}__s{seed}",
        "status": status,
        "reason": None if status == "finished" else "diverged: loss is nan",
        "cell": cell,
        "resolved": resolved,
        "fingerprint": fingerprint(resolved),
        "metrics": {
            k: {"value": v, "settings": settings.get(k, {"n": 300}), "direction": "min"}
            for k, v in values.items()
        }
        if status == "finished"
        else {},
        "train_examples_per_s": 100.0,
        "wall_time_s": 1.0,
        "device_name": "cpu",
        "split_sizes": {"test": 300, "train": 1200, "valid": 297},
        "data_notes": "sklearn digits",
    }
