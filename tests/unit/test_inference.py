"""The per-process model runner: merged batches, results in order, errors to the caller."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from glacierxr.inference import Runner, run_windows


class _Gated(torch.nn.Module):
    """Logits (glacier - background) = the first band; the first forward pass waits for ``gate``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate, self.started, self.sizes = threading.Event(), threading.Event(), []

    def forward(self, x):
        self.sizes.append(len(x))
        self.started.set()
        self.gate.wait(10)
        if torch.isnan(x).any():
            raise ValueError("a NaN window")
        return torch.cat([torch.zeros_like(x[:, :1]), x[:, :1]], dim=1)


def _windows(n: int, value: float) -> np.ndarray:
    return np.full((n, 2, 8, 8), value, np.float32) + np.arange(n, dtype=np.float32)[:, None, None, None]


def test_queued_requests_share_forward_passes_up_to_the_batch_size():
    model = _Gated()
    run = Runner(model, device="cpu", batch_size=8)
    first = run.submit(_windows(3, 0.0))
    assert model.started.wait(10)  # the runner is inside the first forward pass
    later = [run.submit(_windows(n, float(10 * i))) for i, n in enumerate((2, 3, 4), start=1)]
    model.gate.set()
    results = [f.result(10) for f in [first, *later]]
    assert model.sizes == [3, 5, 4]  # 2 + 3 merged; 4 more would pass 8, so it waits for the next pass
    assert (run.batches, run.windows) == (3, 12)
    for res, (n, base) in zip(results, [(3, 0.0), (2, 10.0), (3, 20.0), (4, 30.0)], strict=True):
        expected = 1 / (1 + np.exp(-(base + np.arange(n))))  # softmax of (0, x) is sigmoid(x)
        np.testing.assert_allclose(res[:, 0, 0], expected, rtol=1e-5)
        assert res.shape == (n, 8, 8)


def test_an_error_reaches_its_caller_and_the_runner_keeps_serving():
    model = _Gated()
    model.gate.set()
    run = Runner(model, device="cpu", batch_size=1)
    bad = run.submit(np.full((1, 2, 8, 8), np.nan, np.float32))
    with pytest.raises(ValueError, match="NaN window"):
        bad.result(10)
    np.testing.assert_allclose(run.run(np.zeros((1, 2, 8, 8), np.float32)), 0.5)


def test_runner_matches_a_direct_forward_pass_with_tta():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 2, 3, padding=1).eval()
    x = np.random.default_rng(0).normal(size=(4, 3, 16, 16)).astype(np.float32)
    run = Runner(model, device="cpu", batch_size=4)
    for tta in (1, 8):
        np.testing.assert_allclose(run.run(x, tta=tta), run_windows(model, x, device="cpu", precision="auto", tta=tta),
                                   rtol=1e-5, atol=1e-6)


def test_a_forked_child_starts_its_own_runner():
    import os

    from glacierxr import inference

    model = torch.nn.Conv2d(2, 2, 1).eval()
    inference.runner(("fork-test",), lambda: model, device="cpu").run(np.zeros((1, 2, 4, 4), np.float32))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's runner thread does not exist here
        try:
            torch.set_num_threads(1)  # no OpenMP pool across the fork
            out = inference.runner(("fork-test",), lambda: model, device="cpu").run(np.zeros((1, 2, 4, 4), np.float32))
            os.write(write, str(out.shape).encode())
        finally:
            os._exit(0)
    os.close(write)
    import select

    ready, _, _ = select.select([read], [], [], 30)
    if not ready:  # a child that hangs (the bug this guards against) must not hang the suite
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    assert ready and os.read(read, 100).decode() == "(1, 4, 4)"
