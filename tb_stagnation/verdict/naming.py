"""Tag names to (layer, role), for the naming schemes writers actually use.

Keras' TensorBoard callback writes ``<model>/<layer>/<weight>/histogram``
(``sequential/conv_b/kernel/histogram``), PyTorch and tensorboardX writers
``conv1.weight`` or ``layer1.0.bn1.running_mean``, TF1 code whatever its
author chose (``conv1/weights``, ``weights_conv1``, ``W_fc1``). The role
decides what a tag is compared with: parameters against the run's typical
parameter, gradients and activations not at all (they change with the data,
not with learning). The roles themselves, and which of them count as
parameters, are :class:`~tb_stagnation.verdict.vocabulary.Role` and its sets;
this module only reads them off names.
"""

from __future__ import annotations

import collections
import dataclasses
import re
from collections.abc import Sequence

from tb_stagnation import records
from tb_stagnation.verdict.vocabulary import Role

_ROLE_WORDS = {
    Role.WEIGHT: {
        "kernel", "kernels", "weight", "weights", "w", "filter", "filters",
        "depthwise_kernel", "pointwise_kernel", "recurrent_kernel", "embeddings",
        "embedding", "weight_ih_l0", "weight_hh_l0",
    },
    Role.BIAS: {"bias", "biases", "b", "recurrent_bias", "bias_ih_l0", "bias_hh_l0"},
    Role.NORM_SCALE: {"gamma", "scale"},
    Role.NORM_OFFSET: {"beta", "offset"},
    Role.MOVING_STAT: {
        "moving_mean", "moving_variance", "moving_var", "running_mean",
        "running_var", "num_batches_tracked",
    },
}
_WORD_ROLE = {word: role for role, words in _ROLE_WORDS.items() for word in words}
_GRADIENT_WORDS = {"grad", "grads", "gradient", "gradients"}
_ACTIVATION_WORDS = {
    "activation", "activations", "act", "acts", "output", "outputs",
    "preactivation", "preactivations", "pre_activations",
}
# Suffixes writers append that say nothing about the tensor.
_NOISE_WORDS = {"histogram", "histograms", "hist", "summary", "summaries", "values"}
_NOISE_PARTS = _NOISE_WORDS | {"distribution", "distributions"}  # ... and the parts of a token that say nothing
_NORM_LAYER = re.compile(
    r"(^|_)(bn|batchnorm|batch_norm|batch_normalization|layernorm|layer_norm|ln|"
    r"norm|groupnorm|group_norm|gn)(_?\d+)?$",
    re.IGNORECASE,
)
_VARIABLE_SUFFIX = re.compile(r"(:|_)\d+$")


@dataclasses.dataclass(frozen=True)
class TagName:
    """What a tag says about its tensor.

    ``param_key`` is the tag without writer noise (``conv1/kernel`` for
    ``conv1/kernel/histogram``): the name exact-movement data is matched on.
    """

    layer: str
    role: Role
    param_key: str


def _strip_variable_suffix(token: str) -> str:
    """``kernel:0`` / ``kernel_0`` -> ``kernel`` (TF1 variable names)."""
    stripped = _VARIABLE_SUFFIX.sub("", token)
    return stripped if stripped.lower() in _WORD_ROLE else token


def strip_variable_suffix(key: str) -> str:
    """``out/weights_1`` -> ``out/weights``: the suffix TF1 gives a summary named like its variable."""
    sep = "/" if "/" in key else "."
    head, _, last = key.rpartition(sep)
    last = _strip_variable_suffix(last)
    return f"{head}{sep}{last}" if head else last


def shown_names(tags: Sequence[str]) -> dict[str, str]:
    """Each tag as a sentence shows it: without the suffixes its writer added (``dense1/bias_1``,
    ``conv1/kernel:0``, ``seq/bn/gamma/histogram`` -> ``dense1/bias``, ``conv1/kernel``, ``seq/bn/gamma``)
    where no other of ``tags`` reads the same then.

    TF1 gives a summary named like its variable a ``_1`` suffix, variable names end in ``:0``, Keras'
    callback appends ``/histogram``: none is part of the name the user gave the tensor.
    """
    stripped = {tag: strip_variable_suffix(_strip_noise(tag)) for tag in tags}
    readings = collections.Counter(stripped.values())
    return {tag: name if readings[name] == 1 and name not in stripped else tag for tag, name in stripped.items()}


def _strip_noise(tag: str) -> str:
    """``seq/dense1/bias/histogram`` -> ``seq/dense1/bias``: the words writers append (Keras' callback ``/histogram``)."""
    head, sep, last = tag.rpartition("/")
    return _strip_noise(head) if sep and head and last.lower() in _NOISE_WORDS else tag


def _split_role(token: str) -> tuple[Role | None, str]:
    """Role named by a token and what remains of it as a layer name.

    Handles the whole token (``kernel``) and an underscore prefix or suffix
    (``weights_conv1``, ``conv1_W``).
    """
    word = _strip_variable_suffix(token).lower()
    if word in _WORD_ROLE:
        return _WORD_ROLE[word], ""
    if token == records.ADAPTER:  # whole only: Keras' own LoRA names its tensors lora_kernel_a
        return Role.ADAPTER, ""
    head, _, tail = token.partition("_")
    if tail and head.lower() in _WORD_ROLE:
        return _WORD_ROLE[head.lower()], tail
    rest, _, last = token.rpartition("_")
    if rest and last.lower() in _WORD_ROLE:
        return _WORD_ROLE[last.lower()], rest
    return None, token


def _drop_marker(tokens: list[str], words: set[str]) -> bool:
    """Remove tokens (or ``_grad``-style token parts) that are in ``words``."""
    found = False
    for i, token in enumerate(tokens):
        if token.lower() in words:
            tokens[i] = ""
            found = True
            continue
        parts = token.split("_")
        kept = [p for p in parts if p.lower() not in words]
        if len(kept) < len(parts) and kept:
            tokens[i] = "_".join(kept)
            found = True
    tokens[:] = [t for t in tokens if t]
    return found


def _drop_activation(tokens: list[str]) -> bool:
    """Remove the word saying a tag is an activation: the last token (``conv1/activations``), or the last
    part of it, noise parts dropped (``conv1_output_distribution``, named for the Distributions view).

    A token that names a parameter's role (``weights_output``: TF1's weights of a layer ``output``) is no
    activation.
    """
    if not tokens:
        return False
    if tokens[-1].lower() in _ACTIVATION_WORDS:
        tokens.pop()
        return True
    parts = [p for p in tokens[-1].split("_") if p.lower() not in _NOISE_PARTS]
    if len(parts) > 1 and parts[-1].lower() in _ACTIVATION_WORDS and _split_role(tokens[-1])[0] is None:
        tokens[-1] = "_".join(parts[:-1])
        return True
    return False


def parse(tag: str) -> TagName:
    """Layer and role of a histogram tag; role ``other`` when nothing fits."""
    sep = "/" if "/" in tag else "."
    tokens = [t for t in re.split(r"[/.]", tag) if t]
    while len(tokens) > 1 and tokens[-1].lower() in _NOISE_WORDS:
        tokens.pop()
    is_gradient = _drop_marker(tokens, _GRADIENT_WORDS)
    is_activation = not is_gradient and _drop_activation(tokens)
    param_key = sep.join(tokens) or tag
    role, layer_tokens = Role.OTHER, list(tokens)
    if tokens and not is_activation:
        found, rest = _split_role(tokens[-1])
        if found is not None:
            role = found
            layer_tokens = tokens[:-1] + ([rest] if rest else [])
    if role in (Role.WEIGHT, Role.BIAS) and layer_tokens and _NORM_LAYER.search(layer_tokens[-1]):
        role = Role.NORM_SCALE if role == Role.WEIGHT else Role.NORM_OFFSET
    layer = sep.join(layer_tokens) or param_key
    if is_gradient:
        return TagName(layer=layer, role=Role.GRADIENT, param_key=param_key)
    if is_activation:
        return TagName(layer=layer, role=Role.ACTIVATION, param_key=param_key)
    return TagName(layer=layer, role=role, param_key=param_key)
