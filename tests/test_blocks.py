"""Repeated blocks: recognised by name, walked in numeric order, and told once when all their tensors agree.

The end-to-end story is the issue's: a tiny Hugging Face Llama (built from
a config, no download) trained by the HF Trainer on the CPU with
``model.layers.0`` and ``.1`` frozen, checkpoints every 10 steps, imported
with ``tb-stagnation checkpoints``. Its 18 frozen tensors are one finding,
not 18, and the ranking walks the blocks as the model runs them, not as the
safetensors header lists them (alphabetically). Blocks where only some
tensors share a verdict are told tensor by tensor: block 2's norms are
frozen and its projections train at 1e-5 x the learning rate (stagnant),
block 3's MLP is frozen and the rest of it trains.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from conftest import FROZEN_BLOCKS, LAYERS, LR, llama, train_and_import

from tb_stagnation import cli, engine, wire
from tb_stagnation.verdict import blocks
from tb_stagnation.verdict.vocabulary import Kind, Status

# What one Llama decoder block holds, as its state dict names it.
BLOCK_TENSORS = (
    "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
    "input_layernorm.weight", "post_attention_layernorm.weight",
)


@pytest.fixture(scope="session")
def trained(llama_blocks: Path) -> Path:
    """The session's Llama run with frozen blocks (conftest's ``llama_blocks``), shared with the tab's browser test."""
    return llama_blocks


@pytest.fixture(scope="session")
def analysed(trained: Path) -> engine.Outcome:
    return engine.analyse_logdir(str(trained))


def frozen_tags() -> tuple[str, ...]:
    """Every tensor of the frozen blocks, block by block."""
    return tuple(f"model.layers.{i}.{name}" for i in FROZEN_BLOCKS for name in BLOCK_TENSORS)


def test_frozen_blocks_are_one_finding_that_lists_every_tensor(analysed) -> None:
    frozen = [f for f in analysed.findings if f.kind == Kind.FROZEN]
    finding = frozen[0]
    assert finding.message == "model.layers.0-1: all 18 tensors never changed over 6 checkpoints (steps 10-60)"
    assert sorted(finding.tags) == sorted(frozen_tags())
    assert finding.since_step == 10
    # The tags are in model order: block 0's tensors, then block 1's.
    assert [blocks.parse(t).index for t in finding.tags] == [0] * 9 + [1] * 9


def test_blocks_whose_tensors_differ_are_told_tensor_by_tensor_in_model_order(analysed) -> None:
    told = [(f.kind, f.tags) for f in analysed.findings if f.kind in (Kind.FROZEN, Kind.STAGNANT)]
    assert told == [
        (Kind.FROZEN, tuple(sorted(frozen_tags()))),  # as the checkpoint stores a block: alphabetically
        (Kind.FROZEN, ("model.layers.2.input_layernorm.weight",)),
        (Kind.FROZEN, ("model.layers.2.post_attention_layernorm.weight",)),
        *[(Kind.FROZEN, (f"model.layers.3.mlp.{p}.weight",)) for p in ("down_proj", "gate_proj", "up_proj")],
        *[
            (Kind.STAGNANT, (f"model.layers.2.{name}",))
            for name in sorted(BLOCK_TENSORS)
            if "layernorm" not in name
        ],
    ]
    stagnant = [f for f in analysed.findings if f.kind == Kind.STAGNANT]
    assert all(f.message.startswith(f"{f.tags[0]} barely moves: ") for f in stagnant)


def test_the_ranking_walks_blocks_in_model_order(analysed) -> None:
    rows = sorted(analysed.ranking.rows, key=lambda r: r.order)
    indices = [b.index for b in (blocks.parse(r.tag) for r in rows) if b is not None]
    assert sorted(indices) == indices and set(indices) == set(range(LAYERS))
    assert {r.tag for r in rows if r.status == Status.FROZEN} == {
        *frozen_tags(), "model.layers.2.input_layernorm.weight", "model.layers.2.post_attention_layernorm.weight",
        "model.layers.3.mlp.down_proj.weight", "model.layers.3.mlp.gate_proj.weight", "model.layers.3.mlp.up_proj.weight",
    }
    profile = [blocks.parse(layer.layer) for layer in analysed.ranking.layers]  # model.layers.0.mlp.up_proj
    profile_indices = [b.index for b in profile if b is not None]
    assert sorted(profile_indices) == profile_indices and len(profile_indices) == LAYERS * len(BLOCK_TENSORS)


def test_every_row_names_its_block_and_its_tensor_inside_it(analysed) -> None:
    """The answer's ``block`` and ``module`` (the tab's heatmap rows and columns); ``null`` outside blocks."""
    answers = [wire.row_json(r) for r in analysed.ranking.rows]
    placed = {(a["block"], a["module"]) for a in answers if a["block"] is not None}
    assert placed == {(f"model.layers.{i}", name) for i in range(LAYERS) for name in BLOCK_TENSORS}
    outside = {a["tag"] for a in answers if a["block"] is None}
    assert "model.embed_tokens.weight" in outside and "model.norm.weight" in outside
    assert all(a["module"] is None for a in answers if a["block"] is None)


def test_the_cli_prints_the_grouped_finding(trained: Path) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main([str(trained)]) == 0
    text = " ".join(out.getvalue().split())
    assert "frozen: model.layers.0-1: all 18 tensors never changed over 6 checkpoints (steps 10-60)" in text
    assert "model.layers.0.self_attn.q_proj.weight never changed" not in text


def test_the_vanishing_gradient_test_walks_blocks_not_the_layers_inside_them(tmp_path_factory) -> None:
    """Six blocks, the top two at the learning rate, then 10x slower per block towards the input.

    Inside a block the norm scales move ~50x slower than the projections by
    their size alone; a block is one step of the depth profile, the median of its layers.
    """
    model = llama(6)
    blocks_of = model.model.layers
    in_blocks = {id(p) for block in blocks_of for p in block.parameters()}
    groups = [{"params": [p for p in model.parameters() if id(p) not in in_blocks], "lr": LR}] + [
        {"params": list(block.parameters()), "lr": LR * 10.0 ** min(0, i - 4)} for i, block in enumerate(blocks_of)
    ]
    result = engine.analyse_logdir(str(train_and_import(tmp_path_factory.mktemp("vanishing"), model, groups)))
    assert [f.kind for f in result.findings] == [Kind.VANISHING_GRADIENT], [f.message for f in result.findings]
    (finding,) = result.findings
    assert finding.message.startswith("model.layers.0 barely moves: movement falls about ")
    # The ramp ends where movement peaks: at block 4 or 5, both at the learning rate.
    walked = re.search(r" per block towards the input over (\d) blocks \(.* at model\.layers\.0, ", finding.message)
    assert walked and int(walked[1]) in (5, 6), finding.message
    # Its layers are every layer of the blocks walked, input side first.
    assert [blocks.parse(t).index for t in finding.tags] == [i for i in range(int(walked[1])) for _ in BLOCK_TENSORS]


# ------------------------------------------------------------------ names


@pytest.mark.parametrize(
    "tag, prefix, index, rest, name",
    [
        ("model.layers.3.self_attn.q_proj.weight", "model.layers", 3, "self_attn.q_proj.weight", "model.layers.3"),
        ("transformer.h.11.attn.c_attn.weight", "transformer.h", 11, "attn.c_attn.weight", "transformer.h.11"),
        (
            "bert.encoder.layer.2.attention.self.query.weight", "bert.encoder.layer", 2,
            "attention.self.query.weight", "bert.encoder.layer.2",
        ),
        ("blocks.0.attn.qkv.weight", "blocks", 0, "attn.qkv.weight", "blocks.0"),
        (
            "base_model.model.model.layers.5.self_attn.q_proj.lora_A.default.weight", "base_model.model.model.layers",
            5, "self_attn.q_proj.lora_A.default.weight", "base_model.model.model.layers.5",
        ),
        ("encoder.block.1.layer.0.SelfAttention.q.weight", "encoder.block", 1, "layer.0.SelfAttention.q.weight",
         "encoder.block.1"),
        ("transformer_block_2/dense_5/kernel", "transformer_block", 2, "dense_5/kernel", "transformer_block_2"),
        (
            "functional/transformer_block_1/multi_head_attention_1/query/kernel/histogram",
            "functional/transformer_block", 1, "multi_head_attention_1/query/kernel/histogram",
            "functional/transformer_block_1",
        ),
        # Keras names a class's first instance without a number.
        ("transformer_block/dense/kernel", "transformer_block", 0, "dense/kernel", "transformer_block"),
    ],
)
def test_a_tag_names_its_block(tag: str, prefix: str, index: int, rest: str, name: str) -> None:
    assert blocks.parse(tag) == blocks.Block(prefix=prefix, index=index, rest=rest, name=name)


@pytest.mark.parametrize(
    "tag",
    [
        "conv1.weight",
        "features.0.weight",  # a Sequential's layers
        "layer1.0.conv1.weight",  # torchvision ResNet's stages
        "model.embed_tokens.weight",
        "model.layers.weight",
        "model.layers.3",  # nothing in the block
        "sequential/dense_1/kernel",
        "downblock.conv.weight",  # Keras' block names are Keras' own, "/"-separated
    ],
)
def test_names_without_a_block(tag: str) -> None:
    assert blocks.parse(tag) is None


def test_blocks_go_in_numeric_order_in_the_places_they_held() -> None:
    stored = [  # a safetensors header's order: alphabetical
        "lm_head.weight", "model.layers.0.mlp.weight", "model.layers.1.mlp.weight", "model.layers.10.mlp.weight",
        "model.layers.10.norm.weight", "model.layers.2.mlp.weight", "model.norm.weight",
    ]
    assert blocks.in_model_order(stored) == [
        "lm_head.weight", "model.layers.0.mlp.weight", "model.layers.1.mlp.weight", "model.layers.2.mlp.weight",
        "model.layers.10.mlp.weight", "model.layers.10.norm.weight", "model.norm.weight",
    ]


def test_a_span_of_blocks_is_named_by_its_first_and_last_number() -> None:
    first, last = blocks.parse("model.layers.0.mlp.weight"), blocks.parse("model.layers.15.mlp.weight")
    assert blocks.span(first, last) == "model.layers.0-15"
    assert blocks.span(first, first) == "model.layers.0"
    keras = blocks.parse("transformer_block/dense/kernel"), blocks.parse("transformer_block_3/dense_7/kernel")
    assert blocks.span(*keras) == "transformer_block_0-3"
