"""Dataset distillation of a labelled set in embedding space: a few synthetic labelled embeddings
per class that train a classification head almost as well as the whole annotated set.

Four methods, one interface (``distill_labelled``), all learning the synthetic points (and, with
``soft_labels``, their label distributions) by gradient descent through a small head on the
standardised embeddings:

- ``dd``, meta-learning (Wang et al. 2018): from a freshly sampled head, ``inner`` steps of
  gradient descent on the synthetic set (learnable step size), then the loss on a real batch;
  its gradient flows back through the unrolled steps into the synthetic points.
- ``gm``, gradient matching (Zhao et al., ICLR 2021): per class, the distance (1 - cosine, per
  output unit, summed over layers; the biases count as one unit each, where Zhao's code skips
  them) between the head's gradients on a real batch and on the synthetic points of that class,
  along the synthetic set's own training trajectory: a fresh head every outer step, matched
  ``max(1, inner // 5)`` times, with 2 steps (10 x ``inner_lr``) on the synthetic set between
  matches, and one Adam update of the points from the summed distances.
- ``tm``, trajectory matching (Cazenavette et al., CVPR 2022): ``experts`` heads trained on the
  real set, their parameters saved after every epoch (``experts.safetensors``); from an expert's
  epoch t, ``inner`` steps on the synthetic set (learnable step size) should land near the
  expert's epoch t + ``expert_epochs``: loss ||theta_N - theta_{t+M}||^2 / ||theta_t - theta_{t+M}||^2.
- ``dm``, distribution matching per class (Zhao and Bilen 2023, the unlabelled distillation's
  MMD class by class): the kernel MMD^2 between each class's synthetic points and a real batch of
  the class, under the same mixture of Gaussian kernels plus the linear kernel.

Baselines at the same size: random real examples, herding (per class, greedy toward the class
mean, Welling 2009) and k-center (per class, greedy farthest point), and the full set. Written
here: no maintained library distils tabular embeddings (the papers' code is for image ConvNets).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from textcurate.distill.names import CORESETS, HEADS, LABEL_METHODS  # noqa: F401  (their names, re-exported)

HIDDEN = 128


def label_of(v, where: str = "") -> str | None:
    """A class name for a label value: None when missing (None, NaN, ""), an integral float as its
    integer ("3" for 3.0), an error for a non-integral or infinite float."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if math.isnan(f):
            return None
        if not math.isfinite(f) or f != round(f):
            raise ValueError(f"{where}has the non-integral label {v!r}; a labelled set needs classes (round a "
                             f"score into a column of its own first)")
        return str(int(round(f)))
    return str(v)


def encode_labels(values, ids: list[str], what: str = "labels") -> tuple[np.ndarray, list[str], np.ndarray]:
    """(class index per row, the classes, the rows kept). Missing labels (None, NaN, "") are left
    out and counted by the caller; a float label must be integral (a score is rounded by its owner,
    not here); one class only, or more than 1,000, is an error."""
    keep, labels = [], []
    for i, v in enumerate(values):
        c = label_of(v, f"{what}: row {i} (id {ids[i]!r}) ")
        if c is not None:
            keep.append(i)
            labels.append(c)
    if not labels:
        raise ValueError(f"{what}: no row has a label")
    classes = sorted(set(labels), key=lambda c: (not c.lstrip("-").isdigit(), int(c) if c.lstrip("-").isdigit() else 0, c))
    if len(classes) < 2:
        raise ValueError(f"{what}: every labelled row has the class {classes[0]!r}; distillation needs 2 classes "
                         f"or more")
    if len(classes) > 1000:
        raise ValueError(f"{what}: {len(classes):,} classes; is this an id column?")
    index = {c: k for k, c in enumerate(classes)}
    return np.array([index[c] for c in labels], dtype=np.int64), classes, np.array(keep, dtype=np.int64)


class Standardiser:
    """Per-dimension mean and standard deviation of the real training set: every head sees z = (x - mu) / sd."""

    def __init__(self, x: np.ndarray):
        self.mu = x.mean(0).astype(np.float32)
        self.sd = (x.std(0) + 1e-6).astype(np.float32)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mu) / self.sd).astype(np.float32)

    def inverse(self, z: np.ndarray) -> np.ndarray:
        return (z * self.sd + self.mu).astype(np.float32)


# --- heads as functions of a parameter list ----------------------------------------------------------
def init_head(kind: str, d: int, c: int, gen: torch.Generator, hidden: int = HIDDEN) -> list[torch.Tensor]:
    """Parameters as nn.Linear initialises them (uniform in +-1/sqrt(fan_in))."""
    def lin(i, o):
        b = 1 / math.sqrt(i)
        return [(torch.rand(i, o, generator=gen) * 2 - 1) * b, (torch.rand(o, generator=gen) * 2 - 1) * b]
    if kind == "linear":
        return lin(d, c)
    if kind == "mlp":
        return lin(d, hidden) + lin(hidden, c)
    raise ValueError(f"head: one of {', '.join(HEADS)}, got {kind!r}")


def forward(params: list[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    h = z
    for k in range(0, len(params), 2):
        h = h @ params[k] + params[k + 1]
        if k + 2 < len(params):
            h = F.relu(h)
    return h


def soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against hard labels (int) or label distributions (float rows)."""
    if target.dtype in (torch.int64, torch.int32):
        return F.cross_entropy(logits, target)
    return -(target * F.log_softmax(logits, 1)).sum(1).mean()


def train_head(kind: str, z: np.ndarray, y: np.ndarray, n_classes: int, seed: int, steps: int = 300,
               lr: float = 0.01, weight_decay: float = 5e-4, batch: int = 512) -> list[torch.Tensor]:
    """A fresh head trained by Adam on (z, y): y an int array or soft-label rows."""
    gen = torch.Generator().manual_seed(seed)
    params = [p.requires_grad_() for p in init_head(kind, z.shape[1], n_classes, gen)]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
    yt = torch.from_numpy(np.ascontiguousarray(y)) if y.ndim == 1 else torch.from_numpy(y.astype(np.float32))
    n = len(zt)
    for _ in range(steps):
        idx = torch.randint(n, (batch,), generator=gen) if n > batch else slice(None)
        loss = soft_ce(forward(params, zt[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [p.detach() for p in params]


def accuracy_f1(params: list[torch.Tensor], z: np.ndarray, y: np.ndarray, n_classes: int) -> tuple[float, float]:
    with torch.no_grad():
        pred = forward(params, torch.from_numpy(z)).argmax(1).numpy()
    acc = float((pred == y).mean())
    f1s = []
    for c in range(n_classes):
        tp = np.sum((pred == c) & (y == c))
        fp, fn = np.sum((pred == c) & (y != c)), np.sum((pred != c) & (y == c))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return acc, float(np.mean(f1s)) if f1s else 0.0


# --- the distilled set -----------------------------------------------------------------------------------
@dataclass
class DistilledSet:
    """``z`` (m x d, standardised space), ``y`` (m x C label distributions: one-hot unless soft
    labels were learnt), ``label`` (the class each point was made for), ``source`` (the real row
    each point started from, -1 for none), the method and its cost."""
    method: str
    z: np.ndarray
    y: np.ndarray
    label: np.ndarray
    source: np.ndarray
    seconds: float = 0.0
    info: dict = field(default_factory=dict)

    def hard(self) -> np.ndarray:
        return self.y.argmax(1)


def per_class_sizes(y: np.ndarray, n_classes: int, ipc: int) -> tuple[list[int], dict[int, int]]:
    """ipc for every class, capped at the class's count of real training rows (the cap is stated)."""
    counts = np.bincount(y, minlength=n_classes)
    sizes = [int(min(ipc, counts[c])) for c in range(n_classes)]
    return sizes, {c: int(counts[c]) for c in range(n_classes) if counts[c] < ipc}


def _onehot(label: np.ndarray, c: int) -> np.ndarray:
    out = np.zeros((len(label), c), dtype=np.float32)
    out[np.arange(len(label)), label] = 1
    return out


def coreset(kind: str, z: np.ndarray, y: np.ndarray, n_classes: int, ipc: int, seed: int) -> DistilledSet:
    """Real examples per class: random, herding (greedy, the running mean toward the class mean) or
    k-center (greedy farthest point from the class's chosen ones, starting at the one nearest its mean)."""
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    sizes, capped = per_class_sizes(y, n_classes, ipc)
    rows = []
    for c in range(n_classes):
        idx = np.flatnonzero(y == c)
        k = sizes[c]
        if kind == "random":
            rows.extend(rng.choice(idx, k, replace=False))
            continue
        zc = z[idx].astype(np.float64)
        mu = zc.mean(0)
        chosen: list[int] = []
        if kind == "herding":
            total = np.zeros_like(mu)
            for t in range(k):
                target = mu * (t + 1) - total
                d = np.sum((zc - target) ** 2, axis=1)
                d[chosen] = np.inf
                j = int(np.argmin(d))
                chosen.append(j)
                total += zc[j]
        elif kind == "kcenter":
            j = int(np.argmin(np.sum((zc - mu) ** 2, axis=1)))
            chosen.append(j)
            dist = np.sum((zc - zc[j]) ** 2, axis=1)
            while len(chosen) < k:
                dist[chosen] = -np.inf  # duplicates (distance 0) must not be taken twice
                j = int(np.argmax(dist))
                chosen.append(j)
                dist = np.minimum(dist, np.sum((zc - zc[j]) ** 2, axis=1))
        else:
            raise ValueError(f"coreset: one of {', '.join(CORESETS)}, got {kind!r}")
        rows.extend(idx[chosen])
    rows = np.array(rows, dtype=np.int64)
    return DistilledSet(kind, z[rows].copy(), _onehot(y[rows], n_classes), y[rows], rows,
                        time.perf_counter() - t0, {"capped": capped})


@dataclass
class LabelledOptions:
    iterations: int = 300           # outer steps
    lr_points: float = 0.05         # Adam on the synthetic points
    inner: int = 10                 # dd, tm: unrolled steps; gm: steps on the synthetic set between matches
    inner_lr: float = 0.01          # dd, gm, tm: the inner step size (learnt by dd and tm)
    real_batch: int = 256           # per class (gm, dm) or overall (dd)
    arch: str = "mlp"               # the head the points are distilled through
    soft_labels: bool = False
    experts: int = 5                # tm: expert trajectories
    expert_epochs: int = 2          # tm: M, the expert epochs one synthetic run should cover
    max_start_epoch: int = 10       # tm: the expert epoch a run starts from, uniformly below this
    expert_batch: int = 64          # tm: the experts' SGD batch
    device: str = "cpu"


def train_experts(z: np.ndarray, y: np.ndarray, n_classes: int, opts: LabelledOptions, seed: int) -> dict:
    """``opts.experts`` heads trained on the real set by plain SGD (lr = inner_lr, batch
    expert_batch) for max_start_epoch + expert_epochs epochs, the parameters after every epoch:
    {"params": [expert][epoch] -> list of tensors, "lr": float, "arch": str}."""
    dev = torch.device(opts.device)
    zt, yt = torch.from_numpy(z).to(dev), torch.from_numpy(y).to(dev)
    epochs = opts.max_start_epoch + opts.expert_epochs
    lr = opts.inner_lr * 10  # experts take larger steps than the synthetic runs start with, as in the paper
    out = []
    for e in range(opts.experts):
        gen = torch.Generator().manual_seed(seed * 1000 + e)
        params = [p.to(dev).requires_grad_() for p in init_head(opts.arch, z.shape[1], n_classes, gen)]
        traj = [[p.detach().cpu().clone() for p in params]]
        for _ in range(epochs):
            perm = torch.randperm(len(zt), generator=gen).to(dev)
            for s in range(0, len(zt), opts.expert_batch):
                b = perm[s:s + opts.expert_batch]
                grads = torch.autograd.grad(F.cross_entropy(forward(params, zt[b]), yt[b]), params)
                with torch.no_grad():
                    for p, g in zip(params, grads):
                        p -= lr * g
            traj.append([p.detach().cpu().clone() for p in params])
        out.append(traj)
    return {"params": out, "lr": lr, "arch": opts.arch}


def data_key(z: np.ndarray, y: np.ndarray, opts: "LabelledOptions", seed: int) -> str:
    """What expert trajectories were trained on and how: a stored set is reused only when it matches."""
    import hashlib

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(z, dtype=np.float32).tobytes())
    h.update(np.ascontiguousarray(y, dtype=np.int64).tobytes())
    h.update(repr((opts.arch, opts.experts, opts.max_start_epoch, opts.expert_epochs, opts.expert_batch,
                   opts.inner_lr, seed)).encode())
    return h.hexdigest()[:24]


def save_experts(experts: dict, path: str, key: str = "") -> None:
    from safetensors.torch import save_file

    tensors = {f"e{e}.t{t}.p{k}": p.contiguous() for e, traj in enumerate(experts["params"])
               for t, ps in enumerate(traj) for k, p in enumerate(ps)}
    from textcurate.io.files import commit, temp_path

    tmp = temp_path(path)
    save_file(tensors, tmp, metadata={"lr": repr(experts["lr"]), "arch": experts["arch"],
                                      "experts": str(len(experts["params"])),
                                      "epochs": str(len(experts["params"][0])), "key": key})
    commit(tmp, path)  # a killed run leaves the old file or the new one


def load_experts(path: str) -> dict:
    from safetensors import safe_open

    with safe_open(path, framework="pt") as fh:
        meta = fh.metadata()
        keys = set(fh.keys())
        n_e, n_t = int(meta["experts"]), int(meta["epochs"])
        n_p = len({k.split(".")[2] for k in keys})
        params = [[[fh.get_tensor(f"e{e}.t{t}.p{k}") for k in range(n_p)] for t in range(n_t)] for e in range(n_e)]
    return {"params": params, "lr": float(meta["lr"]), "arch": meta["arch"], "key": meta.get("key", "")}


@dataclass
class _Learnt:
    """What one labelled distillation learns and reads: the synthetic points and their label logits,
    the inner learning rate, the real set by class, and the seeded generator every draw comes from
    (one generator, drawn in the same order whatever the method, so a seed gives one set)."""
    opts: LabelledOptions
    n_classes: int
    dev: object
    gen: object
    zs: object
    lab: object
    logits: object
    log_lr: object
    zr: object
    yr: object
    by_class: list
    syn_class: list
    kernel: object = None
    experts: dict | None = None

    def targets(self):
        return F.softmax(self.logits, 1) if self.opts.soft_labels else self.lab

    def real_batch(self, c: int, k: int):
        idx = self.by_class[c]
        return idx[torch.randint(len(idx), (min(k, len(idx)),), generator=self.gen).to(self.dev)]

    def fresh_head(self):
        d = self.zs.shape[1]
        return [p.to(self.dev).requires_grad_() for p in init_head(self.opts.arch, d, self.n_classes, self.gen)]


def _loss_dm(s: _Learnt):
    """Distribution matching: per class, the kernel MMD between the synthetic points and a real batch."""
    loss = s.zs.new_zeros(())
    for c in range(s.n_classes):
        syn, real = s.zs[s.syn_class[c]], s.zr[s.real_batch(c, s.opts.real_batch)]
        loss = loss + s.kernel(syn, syn).mean() - 2 * s.kernel(syn, real).mean()
    return loss


def _loss_dd(s: _Learnt):
    """Dataset distillation (meta-learning): a fresh head trained on the synthetic set, scored on real rows."""
    params = s.fresh_head()
    tgt, lr = s.targets(), s.log_lr.exp()
    for _ in range(s.opts.inner):
        g = torch.autograd.grad(soft_ce(forward(params, s.zs), tgt), params, create_graph=True)
        params = [p - lr * gi for p, gi in zip(params, g)]
    b = torch.randint(len(s.zr), (min(s.opts.real_batch * 2, len(s.zr)),), generator=s.gen).to(s.dev)
    return F.cross_entropy(forward(params, s.zr[b]), s.yr[b])


def _loss_gm(s: _Learnt):
    """Gradient matching: per class, the head's gradient on the synthetic points against a real batch's,
    along a short trajectory of the head on the synthetic set."""
    opts = s.opts
    params = s.fresh_head()
    loss = s.zs.new_zeros(())
    for _ in range(max(1, opts.inner // 5)):
        tgt = s.targets()
        for c in range(s.n_classes):
            b = s.real_batch(c, opts.real_batch)
            gr = torch.autograd.grad(F.cross_entropy(forward(params, s.zr[b]), s.yr[b]), params)
            sc = s.syn_class[c]
            gs = torch.autograd.grad(soft_ce(forward(params, s.zs[sc]), tgt[sc]), params, create_graph=True)
            loss = loss + sum(_match_distance(a.detach(), g) for a, g in zip(gr, gs))
        # the synthetic set's own trajectory: a few steps of the head on it
        for _ in range(2):
            g = torch.autograd.grad(soft_ce(forward(params, s.zs.detach()), tgt.detach()), params)
            params = [(p - opts.inner_lr * 10 * gi).detach().requires_grad_() for p, gi in zip(params, g)]
    return loss


def _loss_tm(s: _Learnt):
    """Trajectory matching: from an expert's checkpoint, steps on the synthetic set should land where
    the expert landed ``expert_epochs`` later on the real set."""
    opts, experts = s.opts, s.experts
    e = int(torch.randint(len(experts["params"]), (1,), generator=s.gen))
    t = int(torch.randint(opts.max_start_epoch, (1,), generator=s.gen))
    theta0 = [p.to(s.dev) for p in experts["params"][e][t]]
    target = [p.to(s.dev) for p in experts["params"][e][t + opts.expert_epochs]]
    params = [p.clone().requires_grad_() for p in theta0]
    tgt, lr = s.targets(), s.log_lr.exp()
    for _ in range(opts.inner):
        g = torch.autograd.grad(soft_ce(forward(params, s.zs), tgt), params, create_graph=True)
        params = [p - lr * gi for p, gi in zip(params, g)]
    num = sum(((p - q) ** 2).sum() for p, q in zip(params, target))
    den = sum(((p - q) ** 2).sum() for p, q in zip(theta0, target))
    return num / den.clamp_min(1e-12)


LOSSES = {"dm": _loss_dm, "dd": _loss_dd, "gm": _loss_gm, "tm": _loss_tm}


def _start(method: str, z: np.ndarray, y: np.ndarray, n_classes: int, ipc: int, seed: int, opts: LabelledOptions,
           experts: dict | None) -> tuple[_Learnt, object, object]:
    """The learnt state at its start (random real examples of each class), its optimiser, and the start."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    start = coreset("random", z, y, n_classes, ipc, seed)
    dev = torch.device(opts.device)
    zs = torch.tensor(start.z, device=dev, requires_grad=True)
    lab = torch.from_numpy(start.label).to(dev)
    # soft labels: learnable logits, a distribution by construction (softmax), starting at 0.95 on the
    # class whatever the number of classes
    scale = math.log(0.95 * max(n_classes - 1, 1) / 0.05)
    logit0 = torch.from_numpy(_onehot(start.label, n_classes) * scale).to(dev)
    logits = logit0.clone().requires_grad_(opts.soft_labels)
    log_lr = torch.tensor(math.log(opts.inner_lr), device=dev, requires_grad=method in ("dd", "tm"))
    learn = [zs] + ([logits] if opts.soft_labels else [])
    opt = torch.optim.Adam([{"params": learn, "lr": opts.lr_points}]
                           + ([{"params": [log_lr], "lr": 0.01}] if method in ("dd", "tm") else []))
    s = _Learnt(opts, n_classes, dev, gen, zs, lab, logits, log_lr, torch.from_numpy(z).to(dev),
                torch.from_numpy(y).to(dev),
                [torch.from_numpy(np.flatnonzero(y == c)).to(dev) for c in range(n_classes)],
                [torch.from_numpy(np.flatnonzero(start.label == c)).to(dev) for c in range(n_classes)])
    d = z.shape[1]
    if method == "tm":
        if experts is None:
            experts = train_experts(z, y, n_classes, opts, seed)
        need = opts.max_start_epoch + opts.expert_epochs
        if len(experts["params"][0]) <= need - 1 or experts["params"][0][0][0].shape[0] != d:
            raise ValueError(f"tm: the expert trajectories have {len(experts['params'][0])} checkpoints of dimension "
                             f"{experts['params'][0][0][0].shape[0]}; this run needs {need} of dimension {d}")
        log_lr.data.fill_(math.log(experts["lr"]))
        s.experts = experts
    if method == "dm":
        from textcurate.distill.kernels import MixtureKernel

        s.kernel = MixtureKernel.around_median(z, seed=seed)
    return s, opt, start


def distill_labelled(method: str, z: np.ndarray, y: np.ndarray, n_classes: int, ipc: int, seed: int = 0,
                     opts: LabelledOptions | None = None, experts: dict | None = None,
                     log: Callable | None = None) -> DistilledSet:
    """``ipc`` synthetic points per class (capped at the class's real count), learnt by ``method``
    from the standardised real training set (z, y); starts from random real examples of each class.
    One loss per method (``LOSSES``); each step: the loss, Adam on the points (and labels, and the inner
    learning rate of dd and tm)."""
    if method not in LABEL_METHODS:
        raise ValueError(f"method: one of {', '.join(LABEL_METHODS)}, got {method!r}")
    opts = opts or LabelledOptions()
    if method == "dm":  # dm matches inputs only, so its labels stay one-hot
        opts = LabelledOptions(**{**opts.__dict__, "soft_labels": False})
    t0 = time.perf_counter()
    s, opt, start = _start(method, z, y, n_classes, ipc, seed, opts, experts)
    loss_of = LOSSES[method]
    history = []
    for it in range(opts.iterations):
        loss = loss_of(s)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if method in ("dd", "tm"):
            with torch.no_grad():
                s.log_lr.clamp_(math.log(1e-4), math.log(1.0))
        history.append(float(loss.detach()))
        if log and (it + 1) % 100 == 0:
            log(f"  {method} ipc {ipc}: step {it + 1}/{opts.iterations}, loss {np.mean(history[-100:]):.4f}")
    ys = (F.softmax(s.logits, 1) if opts.soft_labels else F.one_hot(s.lab, n_classes).float()).detach().cpu().numpy()
    return DistilledSet(method, s.zs.detach().cpu().numpy(), ys.astype(np.float32), start.label.copy(), start.source,
                        time.perf_counter() - t0,
                        {"capped": start.info["capped"], "loss_first": history[0] if history else None,
                         "loss_last": float(np.mean(history[-20:])) if history else None,
                         "inner_lr": float(s.log_lr.detach().exp()), "soft_labels": opts.soft_labels,
                         "arch": opts.arch, "iterations": opts.iterations})


def _match_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Zhao et al.'s layer distance: sum over output units of 1 - cos(real grad, synthetic grad)."""
    if a.dim() == 1:
        return 1 - F.cosine_similarity(a, b, dim=0, eps=1e-8)
    return (1 - F.cosine_similarity(a, b, dim=0, eps=1e-8)).sum()  # columns are output units


def evaluate_set(z: np.ndarray, y: np.ndarray, zt: np.ndarray, yt: np.ndarray, n_classes: int,
                 heads=HEADS, inits: int = 5, steps: int = 300, seed: int = 0) -> dict:
    """Accuracy and macro-F1 on (zt, yt) of ``inits`` fresh heads of each kind trained on (z, y):
    {head: {"acc": [..], "f1": [..]}}."""
    out = {}
    for kind in heads:
        accs, f1s = [], []
        for k in range(inits):
            params = train_head(kind, z, y, n_classes, seed=seed * 7919 + k, steps=steps)
            a, f = accuracy_f1(params, zt, yt, n_classes)
            accs.append(a)
            f1s.append(f)
        out[kind] = {"acc": accs, "f1": f1s}
    return out


def nearest_real(points: np.ndarray, label: np.ndarray, z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """For each synthetic point, the nearest real training row of its class (Euclidean, standardised)."""
    out = np.empty(len(points), dtype=np.int64)
    for c in np.unique(label):
        idx = np.flatnonzero(y == c)
        sel = np.flatnonzero(label == c)
        d = ((points[sel, None, :] - z[None, idx, :]) ** 2).sum(-1)
        out[sel] = idx[np.argmin(d, axis=1)]
    return out
