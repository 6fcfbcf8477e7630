"""The per-process model runner: every forward pass of a model in a process goes through one thread.

:func:`runner` returns the process's :class:`Runner` for a model and device (created on first
use). Chunk tasks, on as many Dask threads as there are, :meth:`Runner.submit` batches of
normalised windows and get futures back; the runner's thread

* merges queued requests into one forward pass of up to ``batch_size`` windows, so batches span
  chunks (the last, partial batch of a chunk is filled from the next chunk's);
* on CUDA, copies each batch into pinned host memory and on to the device asynchronously, runs it
  under bf16 autocast (``precision="auto"``) and starts the next batch before it waits for the
  previous one's result, so the device does not idle while the host collects outputs;
* optionally runs a ``torch.compile``-d model (``compile=True``; worth it on a GPU, where the
  compiled graph fuses the attention and MLP blocks);
* always calls torch from the same OS thread, so one OpenMP team serves every chunk on CPU and
  one CUDA stream every batch on a GPU, and at most two batches of activations are alive.

A chunk task's own thread meanwhile stacks its next batch and blends the previous one into its
output: the host work overlaps the model.
"""

from __future__ import annotations

import os
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

__all__ = ["Runner", "runner", "run_windows", "d4_transforms"]

_RUNNERS: dict[tuple, Runner] = {}
_RUNNERS_LOCK = threading.Lock()


def _forget_runners_after_fork() -> None:
    """A forked child has none of its parent's runner threads: it starts its own on first use."""
    global _RUNNERS_LOCK
    _RUNNERS.clear()
    _RUNNERS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_runners_after_fork)


def d4_transforms(n: int = 8):
    """The first ``n`` of the 8 flips/rotations of D4 as ``(forward, inverse)`` pairs on (N, C, H, W)."""
    import torch

    out = []
    for flip in (False, True):
        for k in range(4):
            def fwd(t, k=k, flip=flip):
                t = torch.flip(t, dims=(3,)) if flip else t
                return torch.rot90(t, k, dims=(2, 3))

            def inv(t, k=k, flip=flip):
                t = torch.rot90(t, -k, dims=(2, 3))
                return torch.flip(t, dims=(3,)) if flip else t

            out.append((fwd, inv))
    return out[:n]


def _probability(model, x, *, use_bf16: bool, tta: int):
    """p(glacier) (N, H, W) float32 on ``x``'s device, averaged over ``tta`` D4 transforms."""
    import torch

    transforms = d4_transforms(tta) if tta > 1 else [(lambda t: t, lambda t: t)]
    with torch.inference_mode(), torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=use_bf16):
        prob = None
        for fwd, inv in transforms:
            p = inv(torch.softmax(model(fwd(x)).float(), dim=1)[:, 1:2])
            prob = p if prob is None else prob + p
    prob = prob[:, 0]
    return prob / len(transforms) if len(transforms) > 1 else prob


def run_windows(model, windows: np.ndarray, *, device: str, precision: str, tta: int) -> np.ndarray:
    """Glacier probability (N, H, W) float32 for one batch of normalised windows (N, C, H, W), synchronously."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(windows)).to(device)
    use_bf16 = precision == "bf16" or (precision == "auto" and x.device.type == "cuda")
    return _probability(model, x, use_bf16=use_bf16, tta=tta).float().cpu().numpy()


@dataclass
class _Request:
    windows: np.ndarray
    tta: int
    future: Future


class Runner:
    """The thread that runs every forward pass of one model on one device in this process.

    Parameters
    ----------
    model
        A glacierxr model already on ``device``, in eval mode.
    device
        A torch device name (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
    precision
        ``"auto"`` (bf16 autocast on CUDA, float32 on CPU), ``"bf16"`` or ``"fp32"``.
    batch_size
        The most windows in one forward pass; queued requests are merged up to it.
    compile
        Run ``torch.compile(model)`` instead of the eager model.
    """

    def __init__(self, model, *, device: str, precision: str = "auto", batch_size: int = 8,
                 compile: bool = False) -> None:
        import torch

        self.device = torch.device(device)
        self.batch_size = batch_size
        self.use_bf16 = precision == "bf16" or (precision == "auto" and self.device.type == "cuda")
        self._forward = torch.compile(model) if compile else model
        self._cuda = self.device.type == "cuda"
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._held: _Request | None = None
        self.batches = 0
        """Forward passes run so far (for benchmarks: windows / batches is the achieved batch size)."""
        self.windows = 0
        """Windows run so far."""
        threading.Thread(target=self._serve, name=f"glacierxr-runner-{device}", daemon=True).start()

    def submit(self, windows: np.ndarray, *, tta: int = 1) -> Future:
        """Queue a batch of normalised windows (N, C, H, W) float32; the future holds p(glacier) (N, H, W)."""
        future: Future = Future()
        self._queue.put(_Request(np.ascontiguousarray(windows, dtype=np.float32), tta, future))
        return future

    def run(self, windows: np.ndarray, *, tta: int = 1) -> np.ndarray:
        """:meth:`submit` and wait."""
        return self.submit(windows, tta=tta).result()

    def _take(self) -> list[_Request]:
        """The next forward pass: the oldest request plus queued ones that fit beside it."""
        first = self._held or self._queue.get()
        self._held, group, n = None, [first], len(first.windows)
        while n < self.batch_size:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if (nxt.tta, nxt.windows.shape[1:]) != (first.tta, first.windows.shape[1:]) or n + len(nxt.windows) > self.batch_size:
                self._held = nxt
                break
            group.append(nxt)
            n += len(nxt.windows)
        return group

    def _launch(self, group: list[_Request]):
        """Start one forward pass; return what :meth:`_finish` needs (on CUDA it has not finished yet)."""
        import torch

        batch = group[0].windows if len(group) == 1 else np.concatenate([r.windows for r in group])
        x = torch.from_numpy(batch)
        if self._cuda:
            x = x.pin_memory().to(self.device, non_blocking=True)
        prob = _probability(self._forward, x, use_bf16=self.use_bf16, tta=group[0].tta)
        if self._cuda:
            host = torch.empty(prob.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(prob, non_blocking=True)
            done = torch.cuda.Event()
            done.record()
            return group, host, done
        return group, prob, None

    def _finish(self, launched) -> None:
        group, prob, done = launched
        if done is not None:
            done.synchronize()
        out = prob.numpy()
        self.batches += 1
        start = 0
        for r in group:
            n = len(r.windows)
            self.windows += n
            r.future.set_result(out[start : start + n])
            start += n

    def _serve(self) -> None:
        pending = None  # a launched CUDA batch whose result is not collected yet
        while True:
            more = pending is None or self._held is not None or not self._queue.empty()
            launched = self._guarded(self._launch, self._take()) if more else None
            if pending is not None:
                self._guarded(self._finish, pending, group=pending[0])
            pending = None
            if launched is not None:
                if launched[2] is None:  # CPU: already computed
                    self._guarded(self._finish, launched, group=launched[0])
                else:
                    pending = launched

    @staticmethod
    def _guarded(step, arg, *, group=None):
        """Run ``step(arg)``; on an error, hand it to the waiting callers instead of killing the thread."""
        try:
            return step(arg)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller by its future
            for r in group if group is not None else arg:
                if not r.future.done():
                    r.future.set_exception(exc)
            return None


def runner(key: tuple, load, *, device: str, precision: str = "auto", batch_size: int = 8,
           compile: bool = False) -> Runner:
    """This process's :class:`Runner` for ``key`` (a model token and options), created with ``load()`` once.

    Parameters
    ----------
    key
        Identifies the model (its content token); the device, precision, batch size and compile
        flag are added to it.
    load
        Called once, without arguments, to get the model on ``device`` in eval mode.
    """
    full = (*key, device, precision, batch_size, compile)
    with _RUNNERS_LOCK:
        if full not in _RUNNERS:
            _RUNNERS[full] = Runner(load(), device=device, precision=precision, batch_size=batch_size, compile=compile)
        return _RUNNERS[full]
