"""Per-example gradients of a causal LM, one batch at a time, flattened for projection.

Each document's gradient of its mean next-token loss with respect to the chosen parameters:
``all``, ``last:K`` (the last K transformer blocks, whatever the model calls them:
``blocks.N``, ``layers.N``, ``h.N``), or ``lora`` (LoRA adapters that ``add_lora`` puts on the
blocks' linear layers). Documents are cut to the context length; padding is masked out of the
loss. Only one batch of gradients exists at a time: the caller projects it before asking for
the next.

Two ways, the same gradients (tested against a plain backward):
- when every chosen parameter is a linear layer's weight or bias (LoRA adapters always are),
  one batched backward of the sum of the documents' losses, with hooks that keep each linear
  layer's input and output gradient: a document's weight gradient is then
  ``sum_t grad_out[t] x input[t]^T`` (the trick of Opacus and of TRAK's own per-sample
  gradients for linear layers). It costs one backward of the batch, and can run under bf16
  autocast, where ``vmap`` runs per example;
- otherwise ``torch.func.vmap(grad(loss))`` over the batch.
"""

from __future__ import annotations

import re

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, vmap

from textcurate.lm.data import pad_batch

_BLOCK = re.compile(r"(?:^|\.)(?:blocks|layers|h|layer)\.(\d+)\.")


def select_parameters(model: torch.nn.Module, which: str = "all") -> list[str]:
    names = [n for n, p in model.named_parameters()]
    if which == "all":
        return names
    if which == "lora":
        chosen = [n for n in names if "lora_" in n]
        if not chosen:
            raise ValueError("params: lora, but the model has no LoRA adapters (wrap it with peft first)")
        return chosen
    m = re.fullmatch(r"last:(\d+)", which)
    if not m:
        raise ValueError(f"params must be all, lora or last:K, got {which!r}")
    blocks = sorted({int(b.group(1)) for n in names if (b := _BLOCK.search(n))})
    if not blocks:
        raise ValueError("params: last:K, but no numbered blocks (blocks.N / layers.N / h.N) in this model")
    keep = set(blocks[-int(m.group(1)):])
    return [n for n in names if (b := _BLOCK.search(n)) and int(b.group(1)) in keep]


def add_lora(model: torch.nn.Module, r: int = 8, alpha: int = 16, seed: int = 0) -> torch.nn.Module:
    """LoRA adapters (peft, rank ``r``) on every linear layer of the transformer blocks (not the
    output head), the rest of the model frozen, as LESS does: a warm-up then trains only the
    adapters, and gradients are taken with respect to them (``params: lora``)."""
    from peft import LoraConfig, inject_adapter_in_model

    targets = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear) and _BLOCK.search(n + ".")]
    if not targets:
        raise ValueError("params: lora, but no linear layers inside numbered blocks (blocks.N / layers.N / h.N)")
    torch.manual_seed(seed)
    model = inject_adapter_in_model(LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets,
                                               bias="none"), model)
    for n, p in model.named_parameters():
        p.requires_grad_("lora_" in n)
    return model


def _linear_owners(model: torch.nn.Module, names: list[str]) -> dict[str, tuple[torch.nn.Module, str]] | None:
    """{parameter name: (its nn.Linear, 'weight' or 'bias')} when every name is one, else None."""
    owners = {}
    modules = dict(model.named_modules())
    for n in names:
        mod_name, _, leaf = n.rpartition(".")
        mod = modules.get(mod_name)
        if not isinstance(mod, torch.nn.Linear) or leaf not in ("weight", "bias"):
            return None
        owners[n] = (mod, leaf)
    return owners


class PerExampleGrads:
    """``dtype``: ``torch.bfloat16`` runs the forward and backward under bf16 autocast (the hook
    path only; the per-example sums are accumulated in float32); None: float32."""

    def __init__(self, model: torch.nn.Module, params: str = "all", device: str = "cpu", dtype=None):
        self.model = model.to(device).eval()  # eval: no dropout, so a gradient is a function of the document
        self.device = device
        names = select_parameters(model, params)
        all_params = dict(model.named_parameters())
        self.names = names
        self.params = {n: all_params[n].detach() for n in names}
        self.frozen = {n: p.detach() for n, p in all_params.items() if n not in self.params}
        self.frozen.update({n: b for n, b in model.named_buffers()})
        self.dim = sum(p.numel() for p in self.params.values())
        self.owners = _linear_owners(model, names)
        self.dtype = dtype if self.owners is not None else None
        self.method = "hooks" if self.owners is not None else "vmap"

    def _loss(self, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = functional_call(self.model, {**self.frozen, **params}, (x[None],))
        logits = out[0] if isinstance(out, tuple) else out.logits
        return F.cross_entropy(logits[0].float(), y, ignore_index=-100)

    def batch(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """[batch, dim] gradients of each row's mean loss (targets -100 are ignored)."""
        if self.owners is not None:
            return self._batch_hooks(x.to(self.device), y.to(self.device))
        return self._batch_vmap(x, y)

    def _batch_hooks(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        modules = {id(m): m for m, _ in self.owners.values()}
        inputs: dict[int, list] = {k: [] for k in modules}
        outgrads: dict[int, list] = {k: [] for k in modules}
        handles = []

        def keep(mod, args, out):
            inputs[id(mod)].append(args[0].detach())
            if out.requires_grad:
                out.register_hook(lambda g, k=id(mod): outgrads[k].append(g.detach()))

        for m in modules.values():
            handles.append(m.register_forward_hook(keep))
        params = [dict(self.model.named_parameters())[n] for n in self.names]
        flags = [p.requires_grad for p in params]
        try:
            for p in params:
                p.requires_grad_(True)
            with torch.autocast(x.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
                out = self.model(x)
                logits = out[0] if isinstance(out, tuple) else out.logits
            tok = F.cross_entropy(logits.float().transpose(1, 2), y, ignore_index=-100, reduction="none")
            counts = (y != -100).sum(1).clamp(min=1)
            total = (tok.sum(1) / counts).sum()  # a document's gradient is that of its own mean loss
            torch.autograd.grad(total, params)
        finally:
            for h in handles:
                h.remove()
            for p, f in zip(params, flags):
                p.requires_grad_(f)
        cols = []
        for n in self.names:
            mod, leaf = self.owners[n]
            k = id(mod)
            # hooks on a tensor fire in reverse order of the forward: pair the i-th call with the i-th from the end
            b = x.shape[0]
            pairs = [(a.reshape(b, -1, a.shape[-1]), go.reshape(b, -1, go.shape[-1]))
                     for a, go in zip(inputs[k], reversed(outgrads[k]))]
            if leaf == "weight":
                g = sum(torch.einsum("bto,bti->boi", go.float(), a.float()) for a, go in pairs)
            else:
                g = sum(go.float().sum(1) for _, go in pairs)
            cols.append(g.reshape(x.shape[0], -1))
        return torch.cat(cols, dim=1)

    def _batch_vmap(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        from torch.nn.attention import SDPBackend, sdpa_kernel

        # the math attention kernel: vmap has batching rules for its backward (the fused CPU kernel's
        # backward falls back to a slow per-example loop with a warning), at the same speed here
        with sdpa_kernel([SDPBackend.MATH]):
            grads = vmap(grad(self._loss), in_dims=(None, 0, 0))(self.params, x.to(self.device),
                                                                 y.to(self.device))
        return torch.cat([grads[n].reshape(x.shape[0], -1) for n in self.names], dim=1)


def document_batches(docs: list[np.ndarray], eos_id: int, context: int, batch_size: int):
    """(indices, inputs, targets) batches: each document's first ``context`` tokens after an
    end-of-text, right-padded (padding is -100 in the targets)."""
    for start in range(0, len(docs), batch_size):
        idx = list(range(start, min(start + batch_size, len(docs))))
        seqs = [np.concatenate([[eos_id], docs[i][:context]]).astype(np.int64) for i in idx]
        x, y = pad_batch([(s[:-1], s[1:]) for s in seqs], eos_id)
        yield idx, x, y
