"""Exact movement from the checkpoints a run already keeps: ``tb-stagnation checkpoints SRC``.

A histogram only bounds movement from below; two checkpoints give it
exactly. The import runs one way, a module a stage:

* :mod:`.command`: the command line, its messages and exit codes;
* :mod:`.discover`: which checkpoints lie under a directory, their training
  step, and the run directory their movement belongs in;
* :mod:`.formats`: one reader per checkpoint format (a package: one module
  per framework), each handing out one tensor at a time under the
  framework's own parameter name;
* :mod:`.movement`: update ratio, change and update cosine per consecutive
  pair, streamed so that memory is bounded by the largest tensors in hand;
* :mod:`.adapters`: PEFT LoRA adapters, each module's lora_A and lora_B as
  one series on the update ``(lora_alpha / r) B A`` they make, from ``r x r`` products;
* :mod:`.imported`: the event file an import writes (the plugin's own
  records, as the training-time writers write them), and what earlier
  imports wrote, so that re-running adds only new checkpoints.

Framework readers are imported on first use; a missing one is named with the
extra that installs it (:class:`.formats.MissingExtra`).
"""
