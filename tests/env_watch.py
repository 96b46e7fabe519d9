"""A Lightning callback, given as ``+callbacks.env_watch._target_=tests.env_watch.EnvWatch
+callbacks.env_watch.path=<file>``, that writes the environment the task trains in (as JSON)
when training starts."""

from __future__ import annotations

import json
import os

import lightning as L


class EnvWatch(L.Callback):
    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, *args) -> None:
        with open(self.path, "w") as f:
            json.dump(dict(os.environ), f)
