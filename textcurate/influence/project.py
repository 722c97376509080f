"""Random projections of gradients (the JL step of TRAK and LESS), never storing the matrix.

``Projector(dim_in, k, kind, seed)`` maps [batch, dim_in] to [batch, k]:
- ``rademacher`` (TRAK's default) and ``gaussian``: R has i.i.d. +-1 or N(0, 1) entries and
  the projection is g R / sqrt(k). R is generated block by block (rows ``[i, i + block)`` of R
  from a generator seeded by ``(seed, i / block)``) on the gradient's device, so any batch
  sees the very same matrix and the whole of it never exists at once. When it fits in
  ``cache_bytes`` it is generated once and kept.
- ``sparse``: a count sketch: every input coordinate goes to one of k buckets with a random
  sign (both drawn from the seed, block by block). One pass, no multiplications; inner
  products are preserved in expectation with the same 1/sqrt(k) error scale.
"""

from __future__ import annotations

import math

import torch

KINDS = ("rademacher", "gaussian", "sparse")


class Projector:
    def __init__(self, dim_in: int, k: int = 2048, kind: str = "rademacher", seed: int = 0, block: int | None = None,
                 cache_bytes: int = 256 << 20):
        if kind not in KINDS:
            raise ValueError(f"projection kind must be one of {KINDS}, got {kind!r}")
        self.dim_in, self.k, self.kind, self.seed = dim_in, k, kind, seed
        # rows of R per block: about 32 MB of float32 at a time
        self.block = block or max(1, min(dim_in, (32 << 20) // (4 * k)))
        self.cache_bytes = cache_bytes
        self._cache: dict[str, list[torch.Tensor]] = {}

    def _generator(self, index: int, device) -> torch.Generator:
        g = torch.Generator(device=device)
        g.manual_seed((self.seed * 1_000_003 + index) % (2 ** 63))
        return g

    def _dense_block(self, index: int, rows: int, device) -> torch.Tensor:
        g = self._generator(index, device)
        if self.kind == "gaussian":
            return torch.randn(rows, self.k, generator=g, device=device)
        return torch.randint(0, 2, (rows, self.k), generator=g, device=device, dtype=torch.int8).float().mul_(2).sub_(1)

    def _sparse_block(self, index: int, rows: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        g = self._generator(index, device)
        buckets = torch.randint(0, self.k, (rows,), generator=g, device=device)
        signs = torch.randint(0, 2, (rows,), generator=g, device=device, dtype=torch.int8).float().mul_(2).sub_(1)
        return buckets, signs

    def _blocks(self, device):
        key = str(device)
        if key in self._cache:
            yield from self._cache[key]
            return
        per_block = self.block * (self.k if self.kind != "sparse" else 2) * 4
        keep = per_block * math.ceil(self.dim_in / self.block) <= self.cache_bytes
        made = []
        for index, start in enumerate(range(0, self.dim_in, self.block)):
            rows = min(self.block, self.dim_in - start)
            blk = (self._sparse_block(index, rows, device) if self.kind == "sparse"
                   else self._dense_block(index, rows, device))
            if keep:
                made.append((start, rows, blk))
            yield start, rows, blk
        if keep:
            self._cache[key] = made

    @torch.no_grad()
    def project(self, g: torch.Tensor) -> torch.Tensor:
        """[batch, dim_in] -> [batch, k] float32."""
        if g.shape[-1] != self.dim_in:
            raise ValueError(f"gradient of dimension {g.shape[-1]} for a projector of {self.dim_in}")
        g = g.float()
        out = torch.zeros(g.shape[0], self.k, device=g.device)
        for start, rows, blk in self._blocks(g.device):
            part = g[:, start:start + rows]
            if self.kind == "sparse":
                buckets, signs = blk
                out.index_add_(1, buckets, part * signs)
            else:
                out.addmm_(part, blk)
        if self.kind != "sparse":
            out /= math.sqrt(self.k)
        return out
