"""Fitted mixtures with small proxy LMs from the kit (textcurate.lm): RegMix and DoReMi.

``ProxyLab`` tokenises the domains and the target once; then
- ``target_loss(weights)`` trains a fresh GPT on that mixture for a fixed token budget and
  returns its loss on the target (RegMix's unit of work): the experiment's
  ``train_and_score``, cached on disk by content;
- ``doremi()`` runs DoReMi (Xie et al. 2023): a reference model on the reference mixture,
  then a proxy trained with domain weights alpha updated by exponentiated gradient on the
  per-domain excess loss max(l_proxy - l_ref, 0), alpha smoothed towards uniform; the answer
  is alpha averaged over the steps. The proxy trains in the kit's one loop (``train_lm``),
  with DoReMi's batches (rows of every domain) and its weighted loss as hooks.
"""

from __future__ import annotations

import math
import time

import numpy as np

from textcurate.io.records import stable_hash
from textcurate.lm.experiment import Heldout, TrainOptions, build_model, make_tokenizer, train_and_score
from textcurate.io.sampling import PROXY_BPE_SALT
from textcurate.mix.materialise import draw_copies
from textcurate.mix.regmix import clip_to_bounds, fit_regression, sample_mixtures, search_simplex
from textcurate.mix.spec import ProxyConfig


class ProxyLab:
    def __init__(self, domains: dict[str, list], target: list, cfg: ProxyConfig, cache_dir: str | None = None,
                 log=print):
        """``domains``: name -> documents (the training pool of each domain); ``target``: the
        documents whose loss the mixture should lower (held out from every domain)."""
        from textcurate.lm.data import tokenize_documents

        if len(domains) < 2:
            raise ValueError(f"a mixture needs at least 2 domains, got {list(domains)}")
        if not target:
            raise ValueError("no target documents")
        self.cfg, self.log, self.cache_dir = cfg, log, cache_dir
        self.names = list(domains)
        texts = [d.text for docs in domains.values() for d in docs]
        # the BPE is trained on a hash sample of the pool, the same whatever the mixture
        sample = [d.text for docs in domains.values() for d in docs
                  if stable_hash(d.id, PROXY_BPE_SALT) % 4 == 0] or texts
        self.tok = make_tokenizer(cfg, sample)
        self.docs = {n: tokenize_documents(self.tok, [d.text for d in domains[n]], cfg.max_doc_tokens)
                     for n in self.names}
        self.ids = {n: [d.id for d in domains[n]] for n in self.names}
        self.target = tokenize_documents(self.tok, [d.text for d in target], cfg.max_doc_tokens)
        self.heldout = Heldout({"target": self.target})
        self.options = TrainOptions(batch_size=cfg.batch_size, lr=cfg.lr, device=cfg.device)
        self.tokens = np.array([sum(len(t) + 1 for t in self.docs[n]) for n in self.names], dtype=np.float64)
        self.natural = self.tokens / self.tokens.sum()

    def mixture_docs(self, weights: np.ndarray) -> list[np.ndarray]:
        """Documents (repeated as needed) whose tokens split as ``weights`` of the budget."""
        out = []
        for n, w in zip(self.names, weights):
            lengths = np.array([len(t) + 1 for t in self.docs[n]], dtype=np.float64)
            copies = draw_copies(self.ids[n], lengths, w * self.cfg.budget_tokens, seed=0)
            for doc, k in zip(self.docs[n], copies):
                out.extend([doc] * int(k))
        return out

    def target_loss(self, weights, seed: int = 0) -> float:
        w = np.asarray(weights, dtype=np.float64)
        w = w / w.sum()
        score = train_and_score(self.mixture_docs(w), self.cfg, self.cfg.budget_tokens, seed, tokenizer=self.tok,
                                heldout=self.heldout, options=self.options, cache_dir=self.cache_dir)
        loss = score.loss["target"]
        if not score.cached:
            self.log(f"  proxy {', '.join(f'{n} {x:.2f}' for n, x in zip(self.names, w))}: target loss "
                     f"{loss:.4f} ({score.train['wall_seconds']:.0f} s)")
        return loss

    # --- RegMix ----------------------------------------------------------------------------
    def regmix(self, runs: int | None = None, seed: int = 0, kind: str = "auto", max_ratio: float | None = None,
               upper: np.ndarray | None = None) -> dict:
        k = len(self.names)
        if runs is None:  # enough runs for the quadratic model: 2 x (k + k(k+1)/2)
            runs = max(12, 2 * (k + k * (k + 1) // 2))
        mixtures = sample_mixtures(self.natural, runs, seed=seed)
        losses = np.array([self.target_loss(w, seed) for w in mixtures])
        reg = fit_regression(mixtures, losses, kind=kind)
        best, predicted = search_simplex(reg, self.natural, seed=seed, max_ratio=max_ratio, upper=upper)
        measured = self.target_loss(best, seed)  # one more proxy: does the chosen mixture deliver?
        return {"method": "regmix", "domains": self.names, "natural": self.natural.tolist(),
                "runs": [{"weights": w.tolist(), "target_loss": float(loss)} for w, loss in zip(mixtures, losses)],
                "regression": {"kind": reg.kind, "ridge_alpha": reg.alpha, "loo_spearman": reg.loo_spearman,
                               "loo_mae": reg.loo_mae},
                "weights": best.tolist(), "predicted_loss": predicted, "measured_loss": measured,
                "natural_loss": float(losses[0]), "best_sampled": mixtures[int(np.argmin(losses))].tolist(),
                "best_sampled_loss": float(losses.min())}

    # --- DoReMi ----------------------------------------------------------------------------
    def doremi(self, reference_weights=None, eta: float = 1.0, smoothing: float = 1e-3, rows_per_domain: int = 4,
               seed: int = 0, upper: np.ndarray | None = None) -> dict:
        import torch

        from textcurate.lm.data import training_batches
        from textcurate.lm.model import token_losses
        from textcurate.lm.train import TrainConfig, train_lm

        c = self.cfg
        k = len(self.names)
        ref_w = np.full(k, 1.0 / k) if reference_weights is None else np.asarray(reference_weights, dtype=np.float64)
        t0 = time.time()
        ref = build_model(c, self.tok.vocab_size, seed)
        train_lm(ref, self.mixture_docs(ref_w / ref_w.sum()), self.tok.eos_id, c.block_size,
                 TrainConfig(budget_tokens=c.budget_tokens, batch_size=c.batch_size, lr=c.lr, seed=seed,
                             device=c.device))
        ref.eval()
        # the proxy: every step takes rows_per_domain rows of each domain and weights their losses by alpha
        step_tokens = k * rows_per_domain * c.block_size
        steps = max(1, math.ceil(c.budget_tokens / step_tokens))
        streams = [training_batches(self.docs[n], self.tok.eos_id, c.block_size, rows_per_domain,
                                    steps * rows_per_domain * c.block_size, seed + i) for i, n in enumerate(self.names)]

        def batches():
            for _ in range(steps):
                xs, ys = zip(*[next(s)[:2] for s in streams])
                yield torch.cat(xs), torch.cat(ys), 0.0

        alpha = np.full(k, 1.0 / k)
        history = []

        def weighted_loss(model, x, y):
            nonlocal alpha
            with torch.no_grad():
                lref = token_losses(ref, x, y)
            lp = token_losses(model, x, y)
            per_domain = lp.view(k, -1).mean(dim=1)
            excess = (lp.detach() - lref).clamp(min=0).view(k, -1).mean(dim=1).cpu().numpy()
            # exponentiated gradient on the excess loss, then smoothing towards uniform
            logits = np.log(alpha) + eta * excess
            alpha = np.exp(logits - logits.max())
            alpha = alpha / alpha.sum()
            alpha = (1 - smoothing) * alpha + smoothing / k
            history.append(alpha.copy())
            return (torch.as_tensor(alpha, dtype=per_domain.dtype, device=per_domain.device) * per_domain).sum()

        proxy = build_model(c, self.tok.vocab_size, seed + 1)
        train_lm(proxy, None, self.tok.eos_id, c.block_size,
                 TrainConfig(budget_tokens=steps * step_tokens, batch_size=k * rows_per_domain, lr=c.lr, seed=seed,
                             device=c.device), batches=batches(), loss_fn=weighted_loss)
        mean_alpha = np.mean(history, axis=0)
        unclipped = mean_alpha.copy()
        if upper is not None:  # the caps hold for the final mixture, not for the proxy's training
            mean_alpha = clip_to_bounds(mean_alpha, upper)
        # DoReMi optimises the worst-case excess loss over domains, not the target's loss; still,
        # measure the target loss of its mixture and of the natural one, as RegMix does
        measured, natural_loss = self.target_loss(mean_alpha, seed), self.target_loss(self.natural, seed)
        self.log(f"  doremi: {steps} proxy steps, weights " + ", ".join(f"{n} {a:.2f}" for n, a in
                                                                      zip(self.names, mean_alpha))
                 + f" ({time.time() - t0:.0f} s)")
        return {"method": "doremi", "domains": self.names, "natural": self.natural.tolist(),
                "reference_weights": (ref_w / ref_w.sum()).tolist(), "eta": eta, "smoothing": smoothing,
                "steps": steps, "weights": mean_alpha.tolist(), "unclipped_weights": unclipped.tolist(),
                "measured_loss": measured, "natural_loss": natural_loss,
                "final_alpha": alpha.tolist()}
