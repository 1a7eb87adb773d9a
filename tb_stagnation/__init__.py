"""tb-stagnation: which of my layers are actually learning?

``tb_stagnation.analyse(path)`` ranks a log directory's tensors by how much
they move, with findings (:mod:`tb_stagnation.api`). It is imported on first
use, not here: TensorBoard loads the plugin through the
``tensorboard_plugins`` entry point, and the writers
(``tb_stagnation.summary``) must not pull in a framework the user did not
ask for.

Data flows one way, a package a stage: ``sources`` (event files, TensorBoard's
data provider) -> ``samples`` -> ``measure`` (drift, exact series) ->
``verdict`` (ranking, findings) -> ``wire`` (every JSON answer) -> the faces:
``api``, ``cli``, ``plugin``; :mod:`tb_stagnation.engine` runs the pipeline.
``writers``, ``integrations`` and ``checkpoints`` produce the plugin's own
records (:mod:`tb_stagnation.records`).
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["analyse"]


def __getattr__(name: str) -> Any:
    if name == "analyse":
        from tb_stagnation.api import analyse

        return analyse
    raise AttributeError(f"module 'tb_stagnation' has no attribute {name!r}")
