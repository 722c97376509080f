"""The training loop of the small-LM kit, on accelerate.

AdamW (no decay on biases, norms and embeddings), linear warmup then cosine decay to
``min_lr_ratio`` of the peak, gradient accumulation, gradient clipping, bf16 autocast on a
GPU (fp32 on a CPU: this project's CPUs emulate bf16), a fixed budget of training tokens,
a seeded data order, and checkpoints in safetensors (model, optimizer moments, step) from
which a killed run continues on the very same batch. ``heldout_loss`` gives the loss of
every held-out document (summed nats and token count), so callers can average per
document, per domain or per token.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from textcurate.io.files import commit, temp_path, write_json_atomic
from textcurate.io.device import pick_device
from textcurate.lm.data import eval_windows, pad_batch, training_batches
from textcurate.lm.model import lm_loss


@dataclass
class TrainConfig:
    budget_tokens: int = 200_000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup_frac: float = 0.05
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0      # optimizer steps; 0 = only at the end (when checkpoint_dir is set)
    threads: int | None = None


@dataclass
class TrainResult:
    steps: int
    tokens: int
    epochs: float
    seconds: float
    tokens_per_s: float
    losses: list[float] = field(default_factory=list)   # training loss per optimizer step
    resumed_from: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    """The learning rate of optimizer step ``step`` of ``total``: linear warmup, then cosine decay."""
    warmup = max(1, int(cfg.warmup_frac * total))
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return cfg.lr * (cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if p.requires_grad:
            (decay if p.dim() >= 2 else no_decay).append(p)
    # embeddings are 2-D; tied with the head they are a matrix like any other (as nanoGPT does)
    return torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=cfg.betas,
                             foreach=True)


def train_lm(model: torch.nn.Module, docs: list[np.ndarray] | None, eos_id: int, block_size: int,
             cfg: TrainConfig, on_step=None, batches=None, loss_fn=None) -> TrainResult:
    """Train for ``cfg.budget_tokens``; ``on_step(step, total_steps, model, optimizer, lr)``, when
    given, is called after every optimizer step (LESS snapshots its checkpoints there).

    Hooks for a loop that is the same but for its data and loss (DoReMi's proxy):
    ``batches``, an iterator of (inputs, targets, epoch position) of ``cfg.batch_size`` rows,
    replaces the document stream; ``loss_fn(model, inputs, targets)`` replaces the mean
    next-token loss."""
    from accelerate import Accelerator

    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    acc = Accelerator(cpu=device == "cpu", mixed_precision="bf16" if device == "cuda" else "no",
                      gradient_accumulation_steps=cfg.grad_accum)
    opt = make_optimizer(model, cfg)
    model, opt = acc.prepare(model, opt)
    micro_tokens = cfg.batch_size * block_size
    total_steps = max(1, math.ceil(cfg.budget_tokens / (micro_tokens * cfg.grad_accum)))
    start_step, losses, epochs = 0, [], 0.0
    # what must match for a checkpoint to continue this run (the data stream and schedule depend on it)
    run = {"budget_tokens": cfg.budget_tokens, "batch_size": cfg.batch_size, "grad_accum": cfg.grad_accum,
           "seed": cfg.seed, "block_size": block_size, "documents": len(docs) if docs is not None else None}
    if cfg.checkpoint_dir and os.path.exists(os.path.join(cfg.checkpoint_dir, "state.json")):
        start_step, losses, epochs = load_checkpoint(acc.unwrap_model(model), opt, cfg.checkpoint_dir, run)

    if batches is None:
        batches = training_batches(docs, eos_id, block_size, cfg.batch_size,
                                   total_steps * micro_tokens * cfg.grad_accum, cfg.seed)
    loss_fn = loss_fn or lm_loss
    for _ in range(start_step * cfg.grad_accum):  # the same stream: skip what the checkpoint has seen
        next(batches)
    model.train()
    t0 = time.perf_counter()
    step, acc_loss, micro = start_step, 0.0, 0
    for x, y, epochs in batches:
        with acc.accumulate(model):
            for g in opt.param_groups:
                g["lr"] = lr_at(step, total_steps, cfg)
            loss = loss_fn(model, x.to(acc.device), y.to(acc.device))
            acc.backward(loss)
            if acc.sync_gradients and cfg.grad_clip:
                acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            opt.zero_grad(set_to_none=True)
        acc_loss += loss.item()
        micro += 1
        if micro == cfg.grad_accum:
            losses.append(acc_loss / micro)
            acc_loss, micro = 0.0, 0
            step += 1
            if on_step is not None:
                on_step(step, total_steps, acc.unwrap_model(model), opt, lr_at(step - 1, total_steps, cfg))
            if cfg.checkpoint_dir and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < total_steps:
                save_checkpoint(acc.unwrap_model(model), opt, step, losses, cfg.checkpoint_dir, epochs, run)
    seconds = time.perf_counter() - t0
    if cfg.checkpoint_dir:
        save_checkpoint(acc.unwrap_model(model), opt, step, losses, cfg.checkpoint_dir, epochs, run)
    tokens = (step - start_step) * micro_tokens * cfg.grad_accum
    return TrainResult(steps=step, tokens=step * micro_tokens * cfg.grad_accum, epochs=round(epochs, 4),
                       seconds=round(seconds, 3), tokens_per_s=round(tokens / max(seconds, 1e-9), 1),
                       losses=[round(v, 6) for v in losses], resumed_from=start_step)


@torch.no_grad()
def heldout_loss(model: torch.nn.Module, docs: list[np.ndarray], eos_id: int, block_size: int,
                 batch_size: int = 32, device: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(summed loss in nats, number of predicted tokens) per document."""
    from textcurate.lm.model import token_losses

    device = pick_device(device)
    model.eval()
    sums = np.zeros(len(docs))
    counts = np.zeros(len(docs), dtype=np.int64)
    windows = list(eval_windows(docs, eos_id, block_size))
    windows.sort(key=lambda w: len(w[1]))  # similar lengths together: little padding
    for start in range(0, len(windows), batch_size):
        chunk = windows[start:start + batch_size]
        x, y = pad_batch([(xi, yi) for _, xi, yi in chunk], eos_id)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
            losses = token_losses(model, x.to(device), y.to(device)).float().cpu().numpy()
        for r, (doc, _, yi) in enumerate(chunk):
            sums[doc] += float(losses[r, : len(yi)].sum())
            counts[doc] += len(yi)
    model.train()
    return sums, counts


# --- checkpoints: safetensors for tensors, JSON for the rest ---------------------------------------------
def save_checkpoint(model: torch.nn.Module, opt: torch.optim.Optimizer, step: int, losses: list[float],
                    folder: str, epochs: float = 0.0, run: dict | None = None) -> None:
    from safetensors.torch import save_file, save_model

    os.makedirs(folder, exist_ok=True)
    paths = {name: os.path.join(folder, name) for name in ("model.safetensors", "optimizer.safetensors")}
    tmp = {name: temp_path(path) for name, path in paths.items()}
    save_model(model, tmp["model.safetensors"])
    state = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v) and v.dim() > 0:
                tensors[f"{pid}.{k}"] = v.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{k}"] = float(v)
    save_file(tensors, tmp["optimizer.safetensors"])
    # state.json marks a whole set: it goes first and comes back last, so a kill in between leaves
    # no checkpoint (the run starts over) rather than new weights with an old step
    if os.path.exists(os.path.join(folder, "state.json")):
        os.remove(os.path.join(folder, "state.json"))
    for name, path in paths.items():
        commit(tmp[name], path)
    write_json_atomic(os.path.join(folder, "state.json"),
                      {"step": step, "losses": losses, "epochs": epochs, "run": run, "scalars": scalars,
                       "param_groups": state["param_groups"]}, indent=None)


def load_checkpoint(model: torch.nn.Module, opt: torch.optim.Optimizer, folder: str,
                    run: dict | None = None) -> tuple[int, list[float], float]:
    from safetensors.torch import load_file, load_model

    with open(os.path.join(folder, "state.json")) as fh:
        meta = json.load(fh)
    if run is not None and meta.get("run") not in (None, run):
        raise ValueError(f"checkpoint in {folder} is of another run ({meta['run']}), not {run}: "
                         f"remove it or point checkpoint_dir elsewhere")
    load_model(model, os.path.join(folder, "model.safetensors"))
    tensors = load_file(os.path.join(folder, "optimizer.safetensors"))
    state: dict = {}
    for key, v in tensors.items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = v
    for key, v in meta["scalars"].items():
        pid, k = key.split(".", 1)
        state.setdefault(int(pid), {})[k] = torch.tensor(v)
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    return int(meta["step"]), list(meta["losses"]), float(meta.get("epochs", 0.0))
