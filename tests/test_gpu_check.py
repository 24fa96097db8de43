"""The GPU check script's CPU rehearsal (``--tiny``): every stage runs and reports."""

from __future__ import annotations

import importlib.util
import json
import tarfile
from pathlib import Path

import pytest
import torch


def load_script():
    path = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_tiny_rehearsal_runs_every_stage(fresh_plugins, workdir, monkeypatch):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        code = load_script().main(["--tiny", "--out", str(workdir / "out")])
    finally:
        torch.set_num_threads(before)
    assert code == 0
    report = json.loads((workdir / "out" / "gpu-check.json").read_text())
    stages = report["stages"]
    checks = stages["checks"]["findings"]
    assert checks["lstm_dtype"]["lstm_output_dtypes"] == ["torch.bfloat16"]
    assert checks["precision_flags"]["tf32_off"]["flags"] == {
        "matmul": False,
        "cudnn_conv": False,
        "cudnn_rnn": False,
    }
    assert checks["resume"]["ok"], checks["resume"]
    for name in ("compile-reduce-overhead", "compile-max-autotune", "throughput", "collapse"):
        assert stages[name]["status"] == "ok", (name, stages[name].get("output_tail"))
    assert set(stages["compile-reduce-overhead"]["runs"].values()) == {"finished"}
    assert len(stages["collapse"]["runs"]) == 4
    assert stages["throughput"]["budget"]["seconds"] == 120
    assert stages["agreement"]["ok"] and stages["agreement"]["rows"]
    out = sorted(p.name for p in (workdir / "out").iterdir())
    assert out == [
        "collapse.gpu-check.md",
        "gpu-check.json",
        "gpu-check.log",
        "results.tar.gz",
        "throughput-cpu.json",
    ]
    with tarfile.open(workdir / "out" / "results.tar.gz") as tar:
        names = tar.getnames()
    assert any(n.endswith("record.json") for n in names)
    assert not any(n.endswith(".pt") for n in names)
