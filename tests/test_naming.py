"""Tag names of every writer mapped to (layer, role)."""

from __future__ import annotations

import pytest

from tb_stagnation.verdict import naming

CASES = [
    ("conv1/weights", "conv1", "weight"),
    ("sequential/conv_b/kernel/histogram", "sequential/conv_b", "weight"),
    ("conv1.weight", "conv1", "weight"),
    ("weights_conv1", "conv1", "weight"),
    ("W_fc1", "fc1", "weight"),
    ("dense/kernel_0", "dense", "weight"),
    ("conv1/bias:0", "conv1", "bias"),
    ("layer1.0.bn1.running_mean", "layer1.0.bn1", "moving_stat"),
    ("bn1/moving_variance", "bn1", "moving_stat"),
    ("bn1.weight", "bn1", "norm_scale"),
    ("bn1.bias", "bn1", "norm_offset"),
    ("sequential/batch_normalization/gamma/histogram", "sequential/batch_normalization", "norm_scale"),
    ("bn1/beta", "bn1", "norm_offset"),
    ("conv1/kernel/gradient", "conv1", "gradient"),
    ("gradients/conv1/kernel", "conv1", "gradient"),
    ("conv1.weight.grad", "conv1", "gradient"),
    ("conv1/activations", "conv1", "activation"),
    ("fc2.output", "fc2", "activation"),
    ("conv1_output_distribution", "conv1", "activation"),  # as the first report named them
    ("weights_output", "output", "weight"),  # TF1's weights of a layer named output
    # a LoRA adapter row (checkpoints/adapters.py) sits in the layer it adapts; Keras' own LoRA tensors are no such row
    ("model.layers.0.self_attn.q_proj.lora", "model.layers.0.self_attn.q_proj", "adapter"),
    ("dense/lora_kernel_a", "dense/lora_kernel_a", "other"),
    ("my_tensor", "my_tensor", "other"),
    ("<img src=x onerror=alert(1)>", "<img src=x onerror=alert(1)>", "other"),
]


@pytest.mark.parametrize("tag, layer, role", CASES)
def test_parse(tag: str, layer: str, role: str) -> None:
    name = naming.parse(tag)
    assert (name.layer, name.role) == (layer, role)


def test_param_key_matches_exact_names_across_writers() -> None:
    assert naming.parse("sequential/conv1/kernel/histogram").param_key == "sequential/conv1/kernel"
    assert naming.parse("conv1/kernel/gradient").param_key == "conv1/kernel"
    assert naming.parse("conv1.weight").param_key == "conv1.weight"
