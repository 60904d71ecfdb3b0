"""Fast probe of a frozen checkpoint: SUPERB-style weighted layer sum + linear CTC head, and per-layer probes.

The encoder runs once over the probe set (no gradients; hidden states of all L+1 layers streamed to an fp16 file
on disk, one batch in memory at a time: the Table-13 test sets would need ≈ 77 GB of RAM otherwise), then
three things train together on the cached states for ``steps`` Adam steps:
- the **weighted probe**: softmax-normalized weights w (one per layer, learned) → Σ_l w_l · LN(h_l) → linear CTC
  head over letters (SUPERB's ASR-on-frozen-upstream recipe, with a linear instead of a BiLSTM downstream);
- one **linear CTC probe per layer** (the per-layer report: greedy CER/WER of each layer alone, so users see
  where letter information sits — a CTC probe needs no frame alignment, unlike frame-classification probes).
Outputs: ``probe.json`` (WER/CER of the weighted probe, layer weights, per-layer CER/WER) and ``layers.png``.

Shapes: L+1 hidden states, B utterances, T frames, D hidden, V = 29 letters.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curate.errors import ConfigError
from curate.w2v2 import text as txt
from curate.w2v2.finetune import _device, error_rates, load_pretrained, make_batches

log = logging.getLogger(__name__)


@dataclass
class ProbeConfig:
    steps: int = 2000
    lr: float = 1e-3
    batch_s: float = 100.0
    max_s: float = 30.0
    seed: int = 0
    device: str = "auto"
    log_every: int = 100

    def validate(self) -> ProbeConfig:
        if self.steps <= 0 or self.lr <= 0 or self.batch_s <= 0:
            raise ConfigError("probe: steps, lr and batch_s must be positive")
        return self


class FeatureStore:
    """Hidden states of all layers per utterance, on disk: an fp16 file of [frames, L+1, D] rows appended batch
    by batch, read back through ``np.memmap``. ``store[i]`` → a [L+1, T, D] fp16 tensor of utterance i."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = self.path.open("wb")
        self.offsets: list[int] = []
        self.lengths: list[int] = []
        self.shape: tuple[int, int] | None = None  # (L+1, D)
        self._rows, self._map = 0, None
        self._slots: dict[int, int] = {}

    def add(self, i: int, h) -> None:
        """Append utterance ``i``'s states ``h`` [L+1, T, D] (any float tensor)."""
        rows = h.permute(1, 0, 2).contiguous().half().numpy()  # [T, L+1, D]
        self.shape = self.shape or (rows.shape[1], rows.shape[2])
        self._f.write(rows.tobytes())
        self._slots[i] = len(self.offsets)
        self.offsets.append(self._rows)
        self.lengths.append(rows.shape[0])
        self._rows += rows.shape[0]

    def close(self) -> FeatureStore:
        self._f.close()
        if self._rows:
            self._map = np.memmap(self.path, dtype=np.float16, mode="r", shape=(self._rows, *self.shape))
        return self

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i: int):
        import torch

        k = self._slots[int(i)]
        a, n = self.offsets[k], self.lengths[k]
        return torch.from_numpy(np.array(self._map[a : a + n])).permute(1, 0, 2)  # a copy: [L+1, T, D]

    def remove(self) -> None:
        self._map = None
        self.path.unlink(missing_ok=True)


def extract(w2v, utts, device, batch_s: float = 100.0, path: str | Path | None = None) -> FeatureStore:
    """Frozen encoder → a :class:`FeatureStore` at ``path`` (default: a temporary file) holding per utterance
    its [L+1, T, D] hidden states in fp16; only one batch of states is in memory at a time."""
    import tempfile

    import torch

    from curate.w2v2.finetune import AudioCache, _collate, all_hidden_states

    w2v.eval()
    if path is None:
        fd, path = tempfile.mkstemp(suffix=".f16", prefix="probe-features-")
        __import__("os").close(fd)
    store = FeatureStore(Path(path))
    cache = AudioCache(utts, max_h=0)
    for idx in make_batches(np.array([u.duration_s for u in utts]), batch_s, np.random.default_rng(0)):
        wav, lens = _collate([cache(int(i)) for i in idx])
        with torch.no_grad():
            states, flens, _ = all_hidden_states(w2v, wav.to(device), lens.to(device))
        h = torch.stack(states, 0).cpu()  # [L+1, B, T, D]
        for j, i in enumerate(idx):
            store.add(int(i), h[:, j, : int(flens[j])])
    return store.close()


def _heads(n_layers: int, dim: int):
    import torch
    from torch import nn

    class Heads(nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = nn.Parameter(torch.zeros(n_layers))  # softmax → uniform at the start
            self.norm = nn.LayerNorm(dim, elementwise_affine=False)
            self.head = nn.Linear(dim, len(txt.VOCAB))
            self.layer_heads = nn.ModuleList(nn.Linear(dim, len(txt.VOCAB)) for _ in range(n_layers))

        def forward(self, h):  # h [L+1, B, T, D]
            w = torch.softmax(self.weights, 0)
            mixed = (w[:, None, None, None] * self.norm(h)).sum(0)  # [B, T, D]
            return (
                torch.log_softmax(self.head(mixed), -1),
                [torch.log_softmax(lh(h[i]), -1) for i, lh in enumerate(self.layer_heads)],
            )

    return Heads()


def _pad(states: list[Any], idx):
    import torch

    T = max(states[int(i)].shape[1] for i in idx)
    L, _, D = states[int(idx[0])].shape
    h = torch.zeros(L, len(idx), T, D)
    for j, i in enumerate(idx):
        s = states[int(i)]
        h[:, j, : s.shape[1]] = s.float()
    return h, torch.tensor([states[int(i)].shape[1] for i in idx])


def probe(
    checkpoint: str | Path,
    train,
    evals: dict,
    cfg: ProbeConfig,
    out_dir: str | Path,
    *,
    on_log: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Probe ``checkpoint`` (train on ``train`` utterances, report on each of ``evals``); see the module doc."""
    import torch

    cfg.validate()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = _device(cfg.device)
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    w2v, ck = load_pretrained(checkpoint, "cpu")
    w2v = w2v.to(device)
    train = [u for u in train if u.text and u.duration_s <= cfg.max_s]
    if not train:
        raise ConfigError("probe: the training split is empty")
    states = extract(w2v, train, device, cfg.batch_s, out_dir / "features-train.f16")
    eval_states = {
        name: extract(w2v, utts, device, cfg.batch_s, out_dir / f"features-eval-{k}.f16")
        for k, (name, utts) in enumerate(evals.items())
    }
    t_extract = time.perf_counter() - t0
    del w2v
    n_layers, dim = states[0].shape[0], states[0].shape[2]
    heads = _heads(n_layers, dim).to(device)
    opt = torch.optim.Adam(heads.parameters(), lr=cfg.lr)
    labels = [torch.tensor(txt.encode(u.text)) for u in train]
    rng = np.random.default_rng(cfg.seed)
    durations = np.array([u.duration_s for u in train])
    batches: list[np.ndarray] = []
    for step in range(1, cfg.steps + 1):
        if not batches:
            batches = make_batches(durations, cfg.batch_s, rng)
        idx = batches.pop()
        h, flens = _pad(states, idx)
        tgt = [labels[int(i)] for i in idx]
        targets, tlens = torch.cat(tgt).to(device), torch.tensor([len(t) for t in tgt], device=device)
        mixed, per_layer = heads(h.to(device))

        flens = flens.to(device)
        loss_w = _ctc(mixed, targets, flens, tlens)
        loss = loss_w + sum(_ctc(lp, targets, flens, tlens) for lp in per_layer)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if on_log and (step % cfg.log_every == 0 or step == cfg.steps):
            on_log({"step": step, "loss": float(loss_w.detach())})
    weights = torch.softmax(heads.weights.detach(), 0).cpu().tolist()
    results: dict[str, Any] = {}
    for name, utts in evals.items():
        results[name] = _evaluate(heads, eval_states[name], [u.text for u in utts], device)
    for store in (states, *eval_states.values()):  # the features are large: only the report stays
        store.remove()
    report = {
        "checkpoint": str(checkpoint),
        "pretrained_step": ck.get("step"),
        "config": asdict(cfg),
        "layer_weights": weights,
        "train_utterances": len(train),
        "extract_seconds": t_extract,
        "seconds": time.perf_counter() - t0,
        "wer": {k: v["wer"] for k, v in results.items()},
        "cer": {k: v["cer"] for k, v in results.items()},
        "layers": {k: v["layers"] for k, v in results.items()},
    }
    (out_dir / "probe.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_layers(report, out_dir / "layers.png")
    return report


def _ctc(logp, targets, flens, tlens):
    import torch.nn.functional as F

    return F.ctc_loss(logp.transpose(0, 1), targets, flens, tlens, blank=0, zero_infinity=True)


def _evaluate(heads, states, refs: list[str], device) -> dict[str, Any]:
    import torch

    n_layers = states[0].shape[0] if states else 0
    hyps: list[str] = [""] * len(states)
    layer_hyps = [[""] * len(states) for _ in range(n_layers)]
    with torch.no_grad():
        for i in range(len(states)):
            s = states[i]
            mixed, per_layer = heads(s.float()[:, None].to(device))
            hyps[i] = txt.ctc_greedy(mixed[0].argmax(-1).tolist())
            for lay, lp in enumerate(per_layer):
                layer_hyps[lay][i] = txt.ctc_greedy(lp[0].argmax(-1).tolist())
    wer, cer = error_rates(refs, hyps)
    layers = []
    for lay in range(n_layers):
        lw, lc = error_rates(refs, layer_hyps[lay])
        layers.append({"layer": lay, "wer": lw, "cer": lc})
    return {"wer": wer, "cer": cer, "layers": layers}


def plot_layers(report: dict[str, Any], path: str | Path) -> Path:
    """Per-layer CER (one line per evaluation set) and the learned layer weights, as a small PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3), dpi=100)
    for name, layers in report["layers"].items():
        ax.plot([r["layer"] for r in layers], [r["cer"] for r in layers], marker="o", label=f"CER {name}")
    ax.set_xlabel("layer (0 = transformer input)")
    ax.set_ylabel("linear CTC probe CER (%)")
    ax2 = ax.twinx()
    w = report["layer_weights"]
    ax2.bar(range(len(w)), w, alpha=0.25, color="grey", label="weight")
    ax2.set_ylabel("learned layer weight")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title("where letter information sits", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


def load_report(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    p = p / "probe.json" if p.is_dir() else p
    return json.loads(p.read_text())
