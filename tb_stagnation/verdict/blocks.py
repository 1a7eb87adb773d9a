"""Repeated blocks, read off tag names: which block a tensor belongs to, and blocks in numeric order.

Transformers and most deep networks repeat one block: Hugging Face and
PyTorch models keep them in a ``ModuleList`` (``model.layers.3.self_attn.q_proj.weight``,
GPT-2's ``transformer.h.3``, BERT's ``bert.encoder.layer.3``, timm's ``blocks.3``),
Keras names the instances of a block class ``transformer_block``,
``transformer_block_1``, ... A user asks about blocks, not about each of
their tensors: the findings name consecutive blocks whose every tensor shares
a verdict once ("model.layers.0-1: all 18 tensors never changed ..."), and the
ranking walks blocks in numeric order, as the model runs them (a checkpoint's
safetensors header lists its tensors alphabetically: ``layers.10`` before
``layers.2``). Wrappers' prefixes (PEFT's ``base_model.model.``) are part of
the block's name, as the tags say it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence

from tb_stagnation.verdict.vocabulary import BLOCK_CONTAINERS

# Keras' automatic names of a block class's instances: ``transformer_block`` (the first), ``transformer_block_2``.
_KERAS_BLOCK = re.compile(r"(\w*block)(?:_(\d+))?", re.IGNORECASE)


@dataclasses.dataclass(frozen=True)
class Block:
    """Where a tensor sits among repeated blocks: ``model.layers.3.self_attn.q_proj.weight`` is
    block 3 of ``model.layers`` (its :attr:`name` ``model.layers.3``), tensor ``self_attn.q_proj.weight`` in it."""

    prefix: str  # the blocks' common name: "model.layers", "transformer_block"
    index: int
    rest: str  # the tensor's name inside its block
    name: str  # the block's own name, as the tag writes it: "model.layers.3", "transformer_block_2"

    @property
    def key(self) -> tuple[str, int]:
        """What tells blocks apart: tensors with the same key are in one block."""
        return (self.prefix, self.index)


def parse(tag: str) -> Block | None:
    """The block ``tag``'s tensor belongs to, the outermost if blocks nest; ``None`` outside any block.

    A block is a container name from :data:`~vocabulary.BLOCK_CONTAINERS`
    followed by a number (``layers.3``, ``h/3``), or, in Keras' ``/``-separated
    names, a block instance (a name ending in ``block``, with ``_N`` from the second on); something
    must follow it, the tensor. Other numbered names (``features.0.weight``,
    torchvision's ``layer1.0.conv1.weight``) are layers of a ``Sequential`` or
    stages, not repeated blocks.
    """
    sep = "/" if "/" in tag else "."
    tokens = tag.split(sep)
    for i, token in enumerate(tokens[:-1]):
        if token.lower() in BLOCK_CONTAINERS and tokens[i + 1].isdigit() and i + 2 < len(tokens):
            prefix = sep.join(tokens[: i + 1])
            name = sep.join(tokens[: i + 2])
            return Block(prefix=prefix, index=int(tokens[i + 1]), rest=sep.join(tokens[i + 2 :]), name=name)
        keras = _KERAS_BLOCK.fullmatch(token) if sep == "/" else None
        if keras:
            prefix = sep.join([*tokens[:i], keras[1]])
            index = int(keras[2]) if keras[2] else 0
            return Block(prefix=prefix, index=index, rest=sep.join(tokens[i + 1 :]), name=sep.join(tokens[: i + 1]))
    return None


def in_model_order(tags: Sequence[str]) -> list[str]:
    """``tags`` with each block series' tensors in block order, in the places those tensors held.

    Tags outside blocks keep their places, and a block's tensors their order
    among themselves: only the blocks of one series are put in numeric order
    (``layers.2`` before ``layers.10``). A run already in model order is
    returned as it was.
    """
    parsed = [parse(tag) for tag in tags]
    places: dict[str, list[int]] = {}
    for i, block in enumerate(parsed):
        if block is not None:
            places.setdefault(block.prefix, []).append(i)
    out = list(tags)
    for positions in places.values():
        ordered = sorted(positions, key=lambda i: (parsed[i].index, i))
        for place, i in zip(positions, ordered):
            out[place] = tags[i]
    return out


def span(first: Block, last: Block) -> str:
    """The name of consecutive blocks: ``model.layers.0-1``, ``transformer_block_1-2``; one block's own name."""
    if first.key == last.key:
        return first.name
    head = first.name[: len(first.name) - len(str(first.index))] if first.name.endswith(str(first.index)) else (
        f"{first.name}_"
    )
    return f"{head}{first.index}-{last.index}"
