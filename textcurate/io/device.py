"""Where computation runs: the one device picker, and what this CPU computes fast.

- ``pick_device("auto")``: CUDA when torch sees one, else the CPU. Every GPU path takes its device
  from here, so every one of them also runs on the CPU.
- ``cpu_has_bf16()``: whether bf16 is fast on this CPU (AMX or AVX512-BF16); where it is
  emulated (AVX2 only), code that picks a precision keeps fp32.

torch is imported only when ``pick_device`` must ask it.
"""

from __future__ import annotations


def pick_device(device: str = "auto") -> str:
    """``auto``: ``cuda`` when torch sees a GPU, else ``cpu``; anything else is returned as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AMX or AVX512-BF16); elsewhere bf16 is emulated,
    slower than fp32."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = fh.read()
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags
