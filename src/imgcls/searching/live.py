"""A live rich table of the trials while a search runs (stderr, so stdout stays clean)."""

from __future__ import annotations

import time


class LiveBoard:
    """Context manager; ``update`` is an Optuna callback called after every trial."""

    def __init__(self, study, metric: str, enabled: bool, top: int = 8) -> None:
        self.study, self.metric, self.enabled, self.top = study, metric, enabled, top
        self.started = time.monotonic()
        self._live = None

    def __enter__(self) -> LiveBoard:
        if self.enabled:
            from rich.console import Console
            from rich.live import Live

            self._live = Live(self._table(), console=Console(stderr=True), refresh_per_second=2)
            self._live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, study, trial) -> None:
        if self._live is not None:
            self._live.update(self._table())

    def _table(self):
        from .leaderboard import leaderboard, rich_table

        board = leaderboard(self.study)
        minutes = (time.monotonic() - self.started) / 60
        return rich_table(board, self.metric, f"imgcls search: {len(board)} trials, {minutes:.1f} min",
                          self.top, params=False)
