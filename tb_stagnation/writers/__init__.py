"""Writers: parameters in, every ``every`` steps; exact-movement records out (format: :mod:`tb_stagnation.records`).

:mod:`.core` measures (update ratio, RMS, gradient norm and unit movement
per parameter) and builds the ``Summary`` every writer writes; :mod:`.units`
says what an output unit of a tensor is, for the writers and the checkpoint
import alike; :mod:`.tensorflow` and :mod:`.torch` are each framework's
front doors, importing it on first use.
:mod:`tb_stagnation.summary` is the documented place to import them from.
"""
