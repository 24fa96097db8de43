"""Bad input on the command line: one line on stderr, exit code 2, nothing lost."""

from __future__ import annotations

import pytest

from tests.helpers.cli import assert_user_error, run_cli
from tests.helpers.suites import suite_toml

TINY = suite_toml("tiny")  # one epoch of mlp-vae with elbo on the digits


@pytest.fixture
def tiny_suite(workdir):
    path = workdir / "tiny.toml"
    path.write_text(TINY)
    return path


def test_unknown_suite(capsys, fresh_plugins, workdir):
    assert_user_error(
        capsys, ["run", "--suite", "colapse"], "unknown suite 'colapse'", "did you mean 'collapse'"
    )


def test_unknown_scale(capsys, fresh_plugins, workdir):
    assert_user_error(
        capsys,
        ["run", "--suite", "collapse", "--scale", "huge"],
        "has no scale 'huge'",
        "smoke, quick, paper",
    )


def test_unknown_ls_kind(capsys, fresh_plugins):
    assert_user_error(capsys, ["ls", "modles"], "Invalid value", "modles")


def test_unavailable_device(capsys, fresh_plugins, tiny_suite):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert_user_error(
        capsys, ["run", "--suite", str(tiny_suite), "--device", "cuda"], "CUDA is not available"
    )


def test_bad_device_name(capsys, fresh_plugins, tiny_suite):
    assert_user_error(
        capsys,
        ["run", "--suite", str(tiny_suite), "--device", "gpu0"],
        "'gpu0' is not a torch device",
    )


@pytest.mark.parametrize(
    "text,needles",
    [
        (
            TINY.replace("epochs = 1", "epoch = 1"),
            ["group[0].budget.epoch: unknown key", "did you mean 'epochs'"],
        ),
        (
            TINY.replace("iw_samples = 5", "iw_samples = 'many'"),
            ["group[0].eval.iw_samples: expected int"],
        ),
        (
            suite_toml(models=["mlp-vea"]),
            ["unknown model 'mlp-vea'", "did you mean 'mlp-vae'"],
        ),
        (TINY.replace('name = "tiny"', 'name = "tiny"\nseeds = [1]'), ["seeds: unknown key"]),
        (TINY.replace('datasets = ["digits"]\n', ""), ["missing required key", "datasets"]),
        (
            suite_toml(model_params={"mlp-vae": {"width": 3}}),
            ["model 'mlp-vae': unknown parameter 'width'"],
        ),
        ("name = [", ["invalid TOML"]),
        (suite_toml(budget={"epochs": 0}), ["budget.epochs: must be >= 1"]),
    ],
)
def test_bad_suite_file(capsys, fresh_plugins, workdir, text, needles):
    path = workdir / "bad.toml"
    path.write_text(text)
    assert_user_error(capsys, ["run", "--suite", str(path)], *needles)
    assert not (workdir / "results").exists()


def test_missing_suite_file(capsys, fresh_plugins, workdir):
    assert_user_error(
        capsys, ["run", "--suite", "nope.toml"], "suite file nope.toml does not exist"
    )


def test_model_that_does_not_take_the_data(capsys, fresh_plugins, workdir):
    path = workdir / "kinds.toml"
    # Every registered image model accepts digits, so register a text-only one.
    from bench import ModelSpec, hookimpl, plugins

    class TextOnly:
        @hookimpl
        def register_models(self, register):
            register(ModelSpec("text-only", build=lambda info: None, kinds=("text",)))

    plugins.register_plugin(TextOnly(), "text-only")
    path.write_text(suite_toml(models=["text-only"]))
    assert_user_error(
        capsys,
        ["run", "--suite", str(path)],
        "model 'text-only' takes text data, dataset 'digits' is image",
    )


def test_missing_mnist_offline(capsys, fresh_plugins, workdir, monkeypatch):
    monkeypatch.setenv("BENCH_OFFLINE", "1")
    path = workdir / "mnist.toml"
    path.write_text(suite_toml(datasets=["mnist"]))
    empty = workdir / "empty"
    empty.mkdir()
    assert_user_error(
        capsys,
        ["run", "--suite", str(path), "--data-dir", str(empty)],
        "MNIST not found",
        str(empty / "mnist"),
        "BENCH_DATA_DIR",
    )


def test_existing_results_need_resume_or_overwrite(capsys, fresh_plugins, tiny_suite):
    code, out, err = run_cli(capsys, "run", "--suite", str(tiny_suite), "--quiet")
    assert code == 0, err
    record = tiny_suite.parent / "results/tiny/custom/g__digits__mlp-vae__elbo__s0/record.json"
    before = record.read_text()
    assert_user_error(
        capsys, ["run", "--suite", str(tiny_suite)], "already exist", "--resume", "--overwrite"
    )
    assert record.read_text() == before  # nothing was lost
    assert_user_error(
        capsys, ["run", "--suite", str(tiny_suite), "--resume", "--overwrite"], "exclude each other"
    )


def test_leaderboard_without_results(capsys, fresh_plugins, workdir):
    assert_user_error(
        capsys,
        ["leaderboard", "--suite", "collapse", "--scale", "smoke"],
        "no results for suite 'collapse' at scale 'smoke'",
    )


def test_ls_shows_origin(capsys, fresh_plugins):
    code, out, _ = run_cli(capsys, "ls", "datasets")
    assert code == 0
    assert "mnist-static" in out and "50,000 / 10,000 / 10,000" in out and "collapse-bench" in out
    code, out, _ = run_cli(capsys, "ls", "metrics")
    assert "higher is better" in out and "lower is better" in out
