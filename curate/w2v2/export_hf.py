"""Export a pre-training checkpoint to the Hugging Face ``Wav2Vec2Model`` format (config.json + weights).

HF's ``Wav2Vec2FeatureEncoder`` has no conv padding, while thesis §5.2 pads [3,1,1,1,1,0,0] (→ exactly 50 frames
per second). The export stores ``conv_padding`` in config.json; :func:`load_hf_model` loads the model with
``transformers`` and sets each conv's padding from it, which gives the same hidden states (parity test).
A plain ``Wav2Vec2Model.from_pretrained(OUT)`` loads the same weights but without the padding: it yields
49 frames per second and slightly different hidden states near the edges.
"""

from __future__ import annotations

from pathlib import Path

from curate.w2v2 import checkpoint as checkpoints
from curate.w2v2.config import ModelConfig, load_config


def hf_config(cfg: ModelConfig):
    from transformers import Wav2Vec2Config

    return Wav2Vec2Config(
        hidden_size=cfg.hidden,
        num_hidden_layers=cfg.layers,
        num_attention_heads=cfg.heads,
        intermediate_size=cfg.ffn,
        conv_dim=list(cfg.conv_dim),
        conv_kernel=list(cfg.conv_kernel),
        conv_stride=list(cfg.conv_stride),
        conv_bias=False,
        feat_extract_norm="group",
        feat_extract_activation="gelu",
        hidden_act="gelu",
        do_stable_layer_norm=False,
        num_conv_pos_embeddings=cfg.pos_conv_kernel,
        num_conv_pos_embedding_groups=cfg.pos_conv_groups,
        layer_norm_eps=1e-5,
        num_codevectors_per_group=cfg.codebook_entries,
        num_codevector_groups=cfg.codebooks,
        codevector_dim=cfg.codevector_dim,
        proj_codevector_dim=cfg.final_dim,
        num_negatives=cfg.num_negatives,
        contrastive_logits_temperature=cfg.logit_temp,
        diversity_loss_weight=cfg.diversity_weight,
        hidden_dropout=cfg.dropout,
        attention_dropout=cfg.attention_dropout,
        activation_dropout=cfg.activation_dropout,
        feat_proj_dropout=cfg.dropout_input,
        layerdrop=0.0,
        mask_time_length=cfg.mask_length,
        architectures=["Wav2Vec2Model"],
        conv_padding=list(cfg.conv_padding),
    )


def to_hf_state_dict(sd: dict, cfg: ModelConfig) -> dict:
    """Our parameter names → ``Wav2Vec2Model`` names (the pre-training heads are left out)."""
    out = {"masked_spec_embed": sd["mask_emb"]}
    for i in range(len(cfg.conv_dim)):
        out[f"feature_extractor.conv_layers.{i}.conv.weight"] = sd[f"feature_extractor.layers.{i}.conv.weight"]
    for p in ("weight", "bias"):
        out[f"feature_extractor.conv_layers.0.layer_norm.{p}"] = sd[f"feature_extractor.layers.0.norm.{p}"]
        out[f"feature_projection.layer_norm.{p}"] = sd[f"feature_norm.{p}"]
        out[f"feature_projection.projection.{p}"] = sd[f"post_extract_proj.{p}"]
        out[f"encoder.layer_norm.{p}"] = sd[f"encoder_norm.{p}"]
    out["encoder.pos_conv_embed.conv.bias"] = sd["pos_conv.conv.bias"]
    for j in (0, 1):
        key = f"pos_conv.conv.parametrizations.weight.original{j}"
        out[f"encoder.pos_conv_embed.conv.parametrizations.weight.original{j}"] = sd[key]
    names = {
        "q_proj": "attention.q_proj",
        "k_proj": "attention.k_proj",
        "v_proj": "attention.v_proj",
        "out_proj": "attention.out_proj",
        "attn_norm": "layer_norm",
        "fc1": "feed_forward.intermediate_dense",
        "fc2": "feed_forward.output_dense",
        "ffn_norm": "final_layer_norm",
    }
    for i in range(cfg.layers):
        for ours, theirs in names.items():
            for p in ("weight", "bias"):
                out[f"encoder.layers.{i}.{theirs}.{p}"] = sd[f"layers.{i}.{ours}.{p}"]
    return out


def export_hf(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """``curate pretrain export-hf CKPT OUT``: writes OUT/config.json and OUT/model.safetensors."""
    from transformers import Wav2Vec2Model

    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise checkpoints.CheckpointError(f"{checkpoint}: no such checkpoint")
    ck = checkpoints.load(checkpoint)
    if not isinstance(ck, dict) or "config" not in ck or "model" not in ck:
        raise checkpoints.CheckpointError(
            f"{checkpoint}: not a curate pre-training checkpoint (expected 'config' and 'model')"
        )
    cfg = load_config(ck["config"]).model
    model = Wav2Vec2Model(hf_config(cfg))
    model.load_state_dict(to_hf_state_dict(ck["model"], cfg), strict=True)
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    return out_dir


def load_hf_model(path: str | Path):
    """``Wav2Vec2Model.from_pretrained`` plus the conv padding stored in config.json (see module doc)."""
    from transformers import Wav2Vec2Model

    model = Wav2Vec2Model.from_pretrained(str(path))
    for layer, p in zip(model.feature_extractor.conv_layers, getattr(model.config, "conv_padding", []), strict=False):
        layer.conv.padding = (int(p),)
    return model
