"""Random projections of gradients (the JL step of TRAK and LESS), never storing the matrix.

``Projector(dim_in, k, kind, seed)`` maps [batch, dim_in] to [batch, k]:
- ``rademacher`` (TRAK's default) and ``gaussian``: R has i.i.d. +-1 or N(0, 1) entries and
  the projection is g R / sqrt(k). R is generated block by block on the gradient's device, so
  any batch sees the very same matrix and the whole of it never exists at once. When it fits
  in ``cache_bytes`` it is generated once and kept.
- ``sparse``: a count sketch: every input coordinate goes to one of k buckets with a random
  sign. One pass, no multiplications; inner products are preserved in expectation with the
  same 1/sqrt(k) error scale.

Entries are not drawn from torch's generators, whose streams differ between the CPU and
CUDA (features projected on a GPU would not be comparable with features projected on a
CPU). Each entry comes from a counter-based hash of (seed, row, column) in exact int64
arithmetic, as TRAK's CUDA kernel derives its entries from a counter: the same matrix on
every device and for every block size. One 32-bit hash gives 32 Rademacher signs (its bits)
or four ``gaussian`` entries: a 256-level discretised normal of unit variance, one table
lookup per byte (a random projection needs only i.i.d. zero-mean, unit-variance,
sub-Gaussian entries, which these are).
"""

from __future__ import annotations

import math

import torch

KINDS = ("rademacher", "gaussian", "sparse")
_M32 = 0xFFFFFFFF
_MUL = 0x45D9F3B  # below 2^27, so a 32-bit value times it stays below 2^63: no overflow anywhere


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer hash (two xor-shift-multiply rounds) of int64 values: exact integer
    arithmetic, so the same bits on the CPU and on CUDA. Returns int64 in [0, 2^32)."""
    x = x & _M32
    x = ((x >> 16) ^ x) * _MUL & _M32
    x = ((x >> 16) ^ x) * _MUL & _M32
    return (x >> 16) ^ x


def _mix32_int(v: int) -> int:
    """mix32 of a Python int (a seed's salt)."""
    return int(mix32(torch.tensor(v & _M32, dtype=torch.int64)))


_TABLES: dict[tuple[str, str], torch.Tensor] = {}


def _table(kind: str, device) -> torch.Tensor:
    """rademacher: byte -> its 8 bits as +-1 (low bit first), [256, 8]. gaussian: byte -> the
    standard normal quantile at its midpoint, scaled to unit variance, [256, 1]."""
    key = (kind, str(device))
    if key not in _TABLES:
        if kind == "rademacher":
            t = ((torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1).float() * 2 - 1
        else:
            u = (torch.arange(256, dtype=torch.float64) + 0.5) / 256
            z = math.sqrt(2) * torch.erfinv(2 * u - 1)
            t = (z / z.pow(2).mean().sqrt()).float().unsqueeze(1)
        _TABLES[key] = t.to(device)
    return _TABLES[key]


class Projector:
    def __init__(self, dim_in: int, k: int = 2048, kind: str = "rademacher", seed: int = 0, block: int | None = None,
                 cache_bytes: int = 256 << 20):
        if kind not in KINDS:
            raise ValueError(f"projection kind must be one of {KINDS}, got {kind!r}")
        self.dim_in, self.k, self.kind, self.seed = dim_in, k, kind, seed
        self.block = block  # rows of R per block; None: by device and kind (see _rows_per_block)
        self.cache_bytes = cache_bytes
        self._cache: dict[str, list[torch.Tensor]] = {}

    def _rows(self, start: int, rows: int, device) -> torch.Tensor:
        """One 32-bit key per row of R, from the seed and the row's index."""
        r = torch.arange(start, start + rows, device=device, dtype=torch.int64)
        return mix32(mix32((r & _M32) ^ _mix32_int(self.seed)) + (r >> 32))

    def _dense_block(self, start: int, rows: int, device) -> torch.Tensor:
        """Rows of R: 32-bit hash words per (row, word column), split into bytes and unpacked
        through a table: 8 Rademacher signs or one normal quantile per byte."""
        hr = self._rows(start, rows, device).unsqueeze(1)
        words = -(-self.k // (32 if self.kind == "rademacher" else 4))
        w = mix32(hr ^ mix32(torch.arange(words, device=device) ^ _mix32_int(self.seed + 2)))
        parts = (w.unsqueeze(-1) >> torch.arange(0, 32, 8, device=device)) & 255
        return _table(self.kind, device)[parts].view(rows, -1)[:, :self.k]

    def _sparse_block(self, start: int, rows: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        hr = self._rows(start, rows, device)
        buckets = mix32(hr ^ _mix32_int(self.seed + 3)) % self.k
        signs = (mix32(hr ^ _mix32_int(self.seed + 4)) & 1).float().mul_(2).sub_(1)
        return buckets, signs

    def _rows_per_block(self, device) -> int:
        """Rows of R generated at a time: about 32 MB of float32 on a CPU, 512 MB on a GPU (fewer,
        larger kernels); a count sketch's row is 2 numbers, not k. The entries do not depend
        on it (they are a function of seed, row and column)."""
        if self.block:
            return self.block
        budget = (512 << 20) if torch.device(device).type == "cuda" else (32 << 20)
        return max(1, min(self.dim_in, budget // (4 * (2 if self.kind == "sparse" else self.k))))

    def _blocks(self, device):
        key = str(device)
        if key in self._cache:
            yield from self._cache[key]
            return
        block = self._rows_per_block(device)
        keep = self.dim_in * (self.k if self.kind != "sparse" else 2) * 4 <= self.cache_bytes
        made = []
        for start in range(0, self.dim_in, block):
            rows = min(block, self.dim_in - start)
            blk = (self._sparse_block(start, rows, device) if self.kind == "sparse"
                   else self._dense_block(start, rows, device))
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
