"""One-line exact movement for PyTorch training frameworks: a trainer in, the writers' records out.

* :mod:`.lightning`: ``UpdateRatioCallback`` for a PyTorch Lightning ``Trainer``;
* :mod:`.transformers`: ``UpdateRatioCallback`` for a Hugging Face ``Trainer``;
* :mod:`.movement`: what both share (:class:`~.movement.ParameterMovement`).

Both log what :class:`tb_stagnation.summary.TorchUpdateRatioTracker` logs
(update ratio, RMS and gradient norm per parameter, in the same storage
format) plus, optionally, parameter histograms under the same names, into the
run directory of the trainer's own TensorBoard logging. Importing this
package imports no framework; each callback module imports its own (and
PyTorch) when it is imported.
"""
