"""What several test modules share, imported from here (test modules never import each other).

- ``cli``: ``bench`` in this process, its exit code and output; the one-line user error.
- ``data``: where the shared data sets and reference files are.
- ``models``: small models with known answers, and the autoregressive-dependence probe.
- ``plugins``: packages that look installed, the faulty plugin, a hook that "kills" a run.
- ``processes``: waiting on what another process does.
- ``records``: a run record as the runner writes it.
- ``suites``: the tiny suites, as TOML files or as objects; CPU run options.

Fixtures (``workdir``, ``fresh_plugins``, ``one_thread``) are in ``tests/conftest.py``.
"""
