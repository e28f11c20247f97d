"""Exact live-tensor accounting of a training step on CPU, for bench/memory_truth.py (issue 16).

`LiveTensors` is a TorchDispatchMode that sees every tensor an aten op returns, keeps each new storage with the
number of bytes it holds and what made it (the phase of the step and the innermost module running), and is told
by a weak reference when the storage is freed. It sees only what is made while it is active, so it is entered
before the model loads. At every local maximum of the live bytes it keeps the set of live storages, so the peak
can be attributed term by term: base weights, adapter weights, their gradients, optimizer states (known by
identity at the peak) and everything else by what made it.

torch.distributed._tools.mem_tracker.MemTracker does similar bookkeeping with coarser categories (parameter,
buffer, gradient, activation, temporary, optimizer state); comparing its peak with this one is still to do.
"""

from __future__ import annotations

import weakref
from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveTensors(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, tuple[int, str]] = {}  # storage id -> (bytes, what made it)
        self.bytes = 0
        self.peak = 0
        self.peak_live: dict[int, tuple[int, str]] = {}
        self._rising = False
        self.phase = "setup"
        self.modules: list[str] = []
        self.identities: Any = None  # () -> {storage id: term}: parameters, gradients, optimizer states now
        self.fast_bf16 = True  # see _GEMMS
        self.detail_bytes = 2**16  # storages this big keep the op, dtype and shape that made them
        self.details: dict[int, str] = {}
        self.peak_details: dict[int, str] = {}
        self._op = ""

    # --- bookkeeping ------------------------------------------------------------------------------------------

    def reset_peak(self) -> None:
        """Measure the peak from now on (what is alive now is its first candidate)."""
        self.peak = self.bytes
        self._snapshot()

    def adopt(self, tensor: torch.Tensor, what: str) -> int:
        """Count a storage made where no aten op ran (safetensors can hand a loaded tensor over as it is), so that
        the tracker never saw it; returns its bytes (0 if it was seen)."""
        storage = tensor.untyped_storage()
        if tensor.device.type == "meta" or storage._cdata in self.live:
            return 0
        self.live[storage._cdata] = (storage.nbytes(), what)
        weakref.finalize(storage, self._free, storage._cdata)
        self.bytes += storage.nbytes()
        self.peak = max(self.peak, self.bytes)
        return storage.nbytes()

    def _add(self, tensor: torch.Tensor) -> None:
        if tensor.device.type == "meta":
            return
        try:
            storage = tensor.untyped_storage()
        except (RuntimeError, NotImplementedError):  # a subclass without one storage
            return
        key = storage._cdata
        if key in self.live:
            return
        size = storage.nbytes()
        self.live[key] = (size, self._context())
        if size >= self.detail_bytes:
            self.details[key] = f"{self._op} {str(tensor.dtype).removeprefix('torch.')} {list(tensor.shape)}"
        weakref.finalize(storage, self._free, key)
        self.bytes += size
        if self.bytes > self.peak:
            self.peak = self.bytes
            self._rising = True

    def _free(self, key: int) -> None:
        entry = self.live.get(key)
        if entry is None:
            return
        if self._rising:  # just past a new maximum: keep what was alive at it
            self._snapshot()
        del self.live[key]
        self.details.pop(key, None)
        self.bytes -= entry[0]

    def _snapshot(self) -> None:
        known = self.identities() if self.identities else {}
        self.peak_live = {key: (size, known.get(key, what)) for key, (size, what) in self.live.items()}
        self.peak_details = {key: self.details[key] for key in self.peak_live if key in self.details}
        self._rising = False

    def _context(self) -> str:
        module = self.modules[-1] if self.modules else ""
        return f"{self.phase}:{module}"

    def finish(self) -> None:
        if self._rising:
            self._snapshot()

    def largest_at_peak(self, count: int = 30) -> list[str]:
        """The storages alive at the peak grouped by term and by the op, dtype and shape that made them, biggest
        groups first: "count x MiB term: op dtype shape"."""
        groups: dict[str, list[int]] = {}
        for key, detail in self.peak_details.items():
            size, term = self.peak_live[key]
            group = groups.setdefault(f"{term}: {detail}", [0, 0])
            group[0] += 1
            group[1] += size
        ranked = sorted(groups.items(), key=lambda item: -item[1][1])[:count]
        return [f"{number} x {size / number / 2**20:,.2f} MiB {name}" for name, (number, size) in ranked]

    def peak_terms(self) -> Counter:
        terms: Counter = Counter()
        for size, what in self.peak_live.values():
            terms[what] += size
        return terms

    # --- the mode ---------------------------------------------------------------------------------------------

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        self._op = func.overloadpacket.__name__
        if self.fast_bf16 and func.overloadpacket in _GEMMS and _has_bf16(args):
            out = _in_fp32(func, args, kwargs)
        else:
            out = func(*args, **kwargs)
        for item in tree_flatten(out)[0]:
            if isinstance(item, torch.Tensor):
                self._add(item)
        return out


# CPUs without AVX512-BF16 run bf16 matrix products at a few hundred MFLOP/s (0.3 GFLOP/s here against 80 for
# fp32), which would make one step of a real width take hours. With fast_bf16 these ops compute in fp32 and return
# outputs of the dtype, shape and strides the bf16 kernel gives (read from the same call on meta tensors), so the
# storages the step holds are the same; the fp32 temporaries live only inside this call, unseen by the tracker.
_GEMMS = {torch.ops.aten.mm, torch.ops.aten.addmm, torch.ops.aten.bmm, torch.ops.aten.baddbmm,
          torch.ops.aten._grouped_mm, torch.ops.aten._scaled_dot_product_flash_attention_for_cpu,
          torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward}


def _has_bf16(args: Any) -> bool:
    return any(isinstance(item, torch.Tensor) and item.dtype == torch.bfloat16 for item in tree_flatten(args)[0])


def _in_fp32(func: Any, args: Any, kwargs: Any) -> Any:
    from torch.utils._pytree import tree_map

    def to_meta(item: Any) -> Any:
        return torch.empty_strided(item.shape, item.stride(), dtype=item.dtype, device="meta") \
            if isinstance(item, torch.Tensor) else item

    def widen(item: Any) -> Any:
        return item.float() if isinstance(item, torch.Tensor) and item.dtype == torch.bfloat16 else item

    shapes = func(*tree_map(to_meta, args), **tree_map(to_meta, kwargs))
    computed = func(*tree_map(widen, args), **tree_map(widen, kwargs))
    flat_shapes, spec = tree_flatten(shapes)
    flat_out = tree_flatten(computed)[0]
    results = []
    for meta, value in zip(flat_shapes, flat_out, strict=True):
        if isinstance(meta, torch.Tensor):
            exact = torch.empty_strided(meta.shape, meta.stride(), dtype=meta.dtype, device=value.device)
            exact.copy_(value)
            results.append(exact)
        else:
            results.append(value)
    from torch.utils._pytree import tree_unflatten

    return tree_unflatten(results, spec)


def storage_id(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata


def watch_modules(model: torch.nn.Module, tracker: LiveTensors, name_of: Any, roots: frozenset = frozenset()
                  ) -> list[Any]:
    """Forward hooks that keep tracker.modules as the stack of running modules (named by name_of(qualname)); they
    fire again when checkpointing recomputes a layer in the backward pass. Non-reentrant checkpointing stops a
    recompute as soon as it has what backward needs, so some modules never see their forward end: entering a
    module labelled as one of `roots` (modules that never nest, such as decoder layers) starts the stack anew."""
    handles = []
    for qualname, module in model.named_modules():
        label = name_of(qualname)
        if label is None:
            continue

        def enter(_module: Any, _args: Any, label: str = label) -> None:
            if label in roots:
                tracker.modules.clear()
            tracker.modules.append(label)

        def leave(_module: Any, _args: Any, _out: Any) -> None:
            if tracker.modules:
                tracker.modules.pop()

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    return handles
