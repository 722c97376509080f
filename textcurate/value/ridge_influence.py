"""Influence functions (Koh and Liang 2017) for a head on embeddings, where they are exact enough to
check: per training annotation, how much it lowers the validation loss, against real leave-one-out.

The model: a linear head fitted to its optimum (ridge regression on the embeddings plus a bias,
loss L(theta) = mean_i (x_i.theta - y_i)^2 + lam |w|^2), so that the first-order theory holds.
Removing training row i moves theta by about (1/n) H^-1 grad l_i (H the Hessian of L), so the
validation loss changes by about

    value_i = L_val(theta without i) - L_val(theta) ~= (1/n) grad L_val . H^-1 grad l_i

(positive: the row helps, removing it would raise the validation loss; negative: it hurts, e.g. a
mislabelled annotation). H^-1 grad L_val is solved once: explicitly (``solver="explicit"``), or by
conjugate gradient on Hessian-vector products (``solver="cg"``, for heads too large for a d x d
matrix). ``loo_exact`` retrains the head without each row (closed form, Sherman-Morrison), the
check the influence values are measured against.
"""

from __future__ import annotations

import numpy as np
import torch


def _design(x: np.ndarray) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x, dtype=np.float64))
    return torch.cat([t, torch.ones(len(t), 1, dtype=torch.float64)], 1)  # the bias as a last column


def _reg(d: int, lam: float) -> torch.Tensor:
    r = torch.full((d,), float(lam), dtype=torch.float64)
    r[-1] = 0.0  # the bias is not penalised
    return r


def ridge_fit(x: np.ndarray, y: np.ndarray, lam: float) -> torch.Tensor:
    """theta = argmin mean (x.theta - y)^2 + lam |w|^2 (closed form)."""
    a = _design(x)
    yt = torch.as_tensor(np.asarray(y, dtype=np.float64))
    n = len(a)
    h = a.T @ a / n + torch.diag(_reg(a.shape[1], lam))
    return torch.linalg.solve(h, a.T @ yt / n)


def val_loss(theta: torch.Tensor, xv: np.ndarray, yv: np.ndarray) -> float:
    r = _design(xv) @ theta - torch.as_tensor(np.asarray(yv, dtype=np.float64))
    return float((r ** 2).mean())


def _cg(hvp, b: torch.Tensor, tol: float = 1e-10, max_iter: int = 1000) -> tuple[torch.Tensor, int]:
    x = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = float(r @ r)
    for it in range(max_iter):
        hp = hvp(p)
        alpha = rs / float(p @ hp)
        x += alpha * p
        r -= alpha * hp
        new = float(r @ r)
        if new <= tol * tol * float(b @ b):
            return x, it + 1
        p = r + (new / rs) * p
        rs = new
    return x, max_iter


def influence_values(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, lam: float = 1e-2,
                     solver: str = "explicit", damping: float = 0.0) -> tuple[np.ndarray, dict]:
    """Predicted change of the validation loss when each training row is removed (see above);
    ``damping`` adds to H's diagonal (needed for non-convex heads; 0 for ridge, which is convex)."""
    a = _design(x)
    yt = torch.as_tensor(np.asarray(y, dtype=np.float64))
    n, d = a.shape
    reg = _reg(d, lam)
    theta = torch.linalg.solve(a.T @ a / n + torch.diag(reg), a.T @ yt / n)
    resid = a @ theta - yt
    grads = 2 * resid[:, None] * a  # d l_i / d theta (the data term; the penalty's gradient is the same for every i)
    av = _design(xv)
    g_val = 2 * av.T @ (av @ theta - torch.as_tensor(np.asarray(yv, dtype=np.float64))) / len(av)

    def hvp(v: torch.Tensor) -> torch.Tensor:  # H v without forming H
        return 2 * (a.T @ (a @ v)) / n + 2 * reg * v + damping * v

    if solver == "explicit":
        h = 2 * a.T @ a / n + torch.diag(2 * reg + damping)
        s = torch.linalg.solve(h, g_val)
        iters = 0
    elif solver == "cg":
        s, iters = _cg(hvp, g_val)
    else:
        raise ValueError(f"solver: explicit or cg, got {solver!r}")
    # removing row i: theta_-i - theta ~= (1/n) H^-1 (grad l_i + 2 reg theta - grad of the rest's penalty) ~= (1/n) H^-1 g_i
    values = (grads @ s / n).numpy()
    return values, {"solver": solver, "cg_iterations": iters, "train_loss": float((resid ** 2).mean()),
                    "val_loss": val_loss(theta, xv, yv), "lam": lam, "rows": n}


def loo_exact(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, lam: float = 1e-2) -> np.ndarray:
    """L_val(theta without row i) - L_val(theta) for every i, by refitting in closed form.

    With the penalty written as lam |w|^2 inside the mean over n rows, refitting on n-1 rows keeps the
    same lam: theta_-i solves (A'A - a_i a_i' + (n-1) R) theta = A'y - a_i y_i, a rank-one change
    of (A'A + (n-1) R) (Sherman-Morrison)."""
    a = _design(x)
    yt = torch.as_tensor(np.asarray(y, dtype=np.float64))
    n, d = a.shape
    reg = torch.diag(_reg(d, lam))
    full = val_loss(ridge_fit(x, y, lam), xv, yv)
    m_inv = torch.linalg.inv(a.T @ a + (n - 1) * reg)
    rhs = a.T @ yt
    av = _design(xv)
    yv_t = torch.as_tensor(np.asarray(yv, dtype=np.float64))
    out = np.empty(n)
    for i in range(n):
        ai = a[i]
        u = m_inv @ ai
        inv_i = m_inv + torch.outer(u, u) / (1 - float(ai @ u))  # (M - a_i a_i')^-1
        th = inv_i @ (rhs - ai * yt[i])
        out[i] = float(((av @ th - yv_t) ** 2).mean()) - full
    return out


def module_influence(head: torch.nn.Module, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray,
                     weight_decay: float = 1e-3, damping: float = 1e-3, max_iter: int = 500
                     ) -> tuple[np.ndarray, dict]:
    """The same values for any torch head fitted (near) its optimum on mean (f(x) - y)^2 +
    weight_decay |params|^2: H^-1 grad L_val by conjugate gradient on Hessian-vector products
    (double backward, the Hessian never formed), ``damping`` added to keep a non-convex head's
    Hessian positive; then every row's grad l_i . s in one forward-mode pass (torch.func.jvp of the
    per-row losses along s), so no per-row gradient is stored."""
    from torch.func import functional_call, jvp

    names = [n for n, _ in head.named_parameters()]
    params = [p.detach().double().clone() for _, p in head.named_parameters()]
    head = head.double()
    xt, yt = torch.as_tensor(np.asarray(x, dtype=np.float64)), torch.as_tensor(np.asarray(y, dtype=np.float64))
    xvt, yvt = torch.as_tensor(np.asarray(xv, dtype=np.float64)), torch.as_tensor(np.asarray(yv, dtype=np.float64))
    n = len(xt)

    def out(ps, inp):
        return functional_call(head, dict(zip(names, ps)), (inp,)).squeeze(-1)

    def train_loss(ps):
        return ((out(ps, xt) - yt) ** 2).mean() + weight_decay * sum((p ** 2).sum() for p in ps)

    ps = [p.requires_grad_(True) for p in params]
    g_val = torch.autograd.grad(((out(ps, xvt) - yvt) ** 2).mean(), ps)
    flat_g = torch.cat([g.reshape(-1) for g in g_val])
    grads = torch.autograd.grad(train_loss(ps), ps, create_graph=True)
    flat_grads = torch.cat([g.reshape(-1) for g in grads])

    def hvp(v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(flat_grads, ps, grad_outputs=v, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]) + damping * v

    s, iters = _cg(hvp, flat_g.detach(), max_iter=max_iter)
    tangents, at = [], 0
    for p in params:
        tangents.append(s[at:at + p.numel()].reshape(p.shape))
        at += p.numel()
    base = [p.detach() for p in params]
    _, dir_loss = jvp(lambda *q: (out(list(q), xt) - yt) ** 2, tuple(base), tuple(tangents))
    values = (dir_loss / n).detach().numpy()
    return values, {"solver": "cg", "cg_iterations": iters, "damping": damping, "parameters": int(flat_g.numel())}
