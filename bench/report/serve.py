"""``bench report --serve``: the site over HTTP (the standard library's server), rebuilt as runs
write their records and epochs, so that a running suite can be watched. Served pages poll
``stamp.json`` and reload when a rebuild changed it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.report import sources
from bench.report.build import build_one
from bench.report.site import SiteOptions, write_front


class SiteHandler(SimpleHTTPRequestHandler):
    """Files of the site folder only; nothing cached (a page must see the next build), and no
    line per request on the terminal."""

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass


class Watcher:
    """Rebuilds a board when its records or epoch logs change (polled every ``interval`` s)."""

    def __init__(
        self,
        results_dir: Path,
        site: Path,
        options: SiteOptions,
        suite: str | None,
        scale: str | None,
        echo: Callable[[str], None],
    ) -> None:
        self.results_dir, self.site, self.options = results_dir, site, options
        self.suite, self.scale, self.echo = suite, scale, echo
        self.seen: dict[tuple[str, str], tuple] = {}
        self.stop = threading.Event()

    def prime(self) -> None:
        """Take the result sets as they are now as built (call it before building them)."""
        for suite, scale in sources.result_sets(self.results_dir, self.suite, self.scale):
            self.seen[(suite, scale)] = sources.signature(self.results_dir, suite, scale)

    def look(self) -> bool:
        """One poll: rebuild what changed; True when anything was rebuilt."""
        changed = False
        for suite, scale in sources.result_sets(self.results_dir, self.suite, self.scale):
            sig = sources.signature(self.results_dir, suite, scale)
            if self.seen.get((suite, scale)) == sig:
                continue
            try:
                build_one(self.results_dir, self.site, suite, scale, self.options, self.echo)
            except Exception as exc:  # a half-written run must not stop the server
                self.echo(f"report: {suite}/{scale} not rebuilt: {type(exc).__name__}: {exc}")
                continue
            self.seen[(suite, scale)] = sig
            changed = True
        if changed:
            write_front(self.site, self.options.live)
        return changed

    def run(self, interval: float) -> None:
        while not self.stop.wait(interval):
            self.look()


def serve(
    watcher: Watcher,
    host: str,
    port: int,
    interval: float,
    echo: Callable[[str], None],
) -> None:
    """Serve ``watcher.site`` until interrupted, rebuilding in a background thread."""
    handler = partial(SiteHandler, directory=str(watcher.site))
    server = ThreadingHTTPServer((host, port), handler)
    thread = threading.Thread(
        target=watcher.run, args=(interval,), name="report-watch", daemon=True
    )
    thread.start()
    echo(
        f"report: serving {watcher.site} at http://{host}:{server.server_address[1]}/ "
        f"(rebuilt as runs finish; Ctrl-C stops)"
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        watcher.stop.set()
        server.server_close()
