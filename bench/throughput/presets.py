"""``bench throughput --preset NAME``: named sets of option values for a purpose.

Options given on the command line win over the preset's; the preset's win over the defaults.
Values are as the command's options take them (``device``-specific ones under ``cuda`` and
``cpu``), plus ``settings`` that have no option of their own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    description: str
    options: dict[str, Any]
    cuda: dict[str, Any] = field(default_factory=dict)
    cpu: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)

    def option_values(self, device_type: str) -> dict[str, Any]:
        return {**self.options, **(self.cuda if device_type == "cuda" else self.cpu)}


PRESETS = {
    "gpu-check": Preset(
        description="the throughput part of a short GPU window (5 minutes): the paper's "
        "PixelCNN and LSTM VAEs (the reference-code variants the paper scale trains) at their "
        "own batch and a large one, eager fp32, compiled with "
        "CUDA graphs and bf16; runner vs plain loop; IW-NLL at K=500 against the per-example "
        "reference; --jobs 4 vs --jobs 1 on the smoke suite",
        options={
            "models": "pixelcnn-vae-ref,lstm-vae-ref",
            "scale": "paper",
            "budget_s": 300.0,
            "iw_samples": 500,
            "overhead_epochs": 1,
            "jobs": 4,
            "jobs_scale": "smoke",
        },
        cuda={
            "compile_mode": "reduce-overhead",
            "iw_examples": 200,
            "iw_budget": 10.0,
            "overhead_examples": 5000,
            "overhead_repeats": 3,
        },
        # The CPU run is a rehearsal of the GPU one: same parts, short timing windows.
        cpu={
            "amp": False,  # bf16 LSTMs have no fast CPU kernel: minutes per step
            "warmup": 1,
            "min_time": 0.2,
            "repeats": 2,
            "eval_batch": 50,
            "iw_examples": 20,
            "iw_budget": 5.0,
            "overhead_examples": 200,
            "overhead_repeats": 2,
        },
        settings={"train_batches": ("workload", "large"), "iw_compile": False},
    ),
}
