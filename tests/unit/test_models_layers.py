"""Tests of the shared building blocks: window attention (padding, shifts, bias) and the LGCB parts."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from glacierxr.errors import InputShapeError
from glacierxr.models.base import check_input, nearest_multiples
from glacierxr.models.decoders import cross_shaped_context
from glacierxr.models.layers import RelativePositionBias, window_attention
from glacierxr.models.lgt import stage_kinds

torch.set_num_threads(2)


def _reference(x, qkv, heads, window, shift, bias):
    """Naive O((HW)^2) window attention: token i attends to j iff both lie in the same (shifted) window
    and, with a shift, in the same original region."""
    b, h, w, c = x.shape
    hp, wp = -(-h // window) * window, -(-w // window) * window
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    # position in the shifted, padded frame
    sy, sx = (ys - shift) % hp, (xs - shift) % wp
    win = (sy // window) * (wp // window) + sx // window
    if shift:
        def region(v, size):
            return torch.where(v < size - window, 0, torch.where(v < size - shift, 1, 2))
        reg = region(sy, hp) * 3 + region(sx, wp)
    else:
        reg = torch.zeros_like(win)
    win, reg = win.flatten(), reg.flatten()
    allowed = (win[:, None] == win[None, :]) & (reg[:, None] == reg[None, :])
    q, k, v = qkv(x.reshape(b, h * w, c)).reshape(b, h * w, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    logits = q @ k.transpose(-1, -2) / (c // heads) ** 0.5
    if bias is not None:
        pos = (sy.flatten() % window) * window + sx.flatten() % window
        logits = logits + bias[:, pos][:, :, pos]
    logits = logits.masked_fill(~allowed, float("-inf"))
    out = logits.softmax(-1) @ v
    return out.transpose(1, 2).reshape(b, h, w, c)


@pytest.mark.parametrize(("h", "w", "window", "shift"), [(8, 8, 4, 0), (6, 10, 4, 0), (8, 12, 4, 2), (7, 9, 4, 2),
                                                         (5, 5, 7, 0), (14, 9, 7, 3)])
@pytest.mark.parametrize("use_bias", [False, True])
def test_window_attention_matches_naive_reference(h, w, window, shift, use_bias):
    torch.manual_seed(0)
    c, heads = 8, 2
    qkv = nn.Linear(c, 3 * c)
    bias = RelativePositionBias(window, heads)() if use_bias else None
    x = torch.randn(2, h, w, c)
    got = window_attention(x, qkv, heads, window, shift=shift, bias=bias)
    want = _reference(x, qkv, heads, window, shift, bias)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def test_relative_position_bias_depends_on_offset_only():
    rpb = RelativePositionBias(3, 1)
    with torch.no_grad():
        rpb.table.copy_(torch.arange(25, dtype=torch.float32)[:, None])
    b = rpb()[0]
    # (0,0)->(1,1) and (1,1)->(2,2) have the same offset
    assert b[0, 4] == b[4, 8]
    assert b[0, 4] != b[0, 5]


def test_cross_shaped_context_is_strip_average():
    x = torch.zeros(1, 1, 9, 9)
    x[0, 0, 4, 4] = 1.0
    y = cross_shaped_context(x, 4)
    assert y.shape == x.shape
    # the impulse spreads along its row and column only
    assert torch.count_nonzero(y[0, 0]) == 4 + 4 - 1
    assert y[0, 0, 4, 4] == pytest.approx(0.5)


def test_stage_kinds():
    assert stage_kinds("LG", 4) == ["L", "G", "L", "G"]
    assert stage_kinds("LG", 1) == ["L"]
    assert stage_kinds("GG", 3) == ["G", "G", "G"]


def test_nearest_multiples():
    assert nearest_multiples(250, 32) == (224, 256)
    assert nearest_multiples(20, 32) == (32,)


@given(n=st.integers(1, 5000), m=st.sampled_from([1, 2, 16, 32, 64]))
def test_nearest_multiples_bracket_n(n, m):
    options = nearest_multiples(n, m)
    assert all(o % m == 0 and o > 0 for o in options)
    assert options[-1] - m < n <= options[-1] or n % m == 0
    if len(options) == 2:
        assert options[0] <= n < options[1]


def test_check_input_reports_both_axes():
    with pytest.raises(InputShapeError) as err:
        check_input(torch.zeros(1, 2, 250, 300), bands=("a", "b"), output_stride=32)
    assert "H=250" in str(err.value) and "W=300 is not a multiple of 32; use 288 or 320" in str(err.value)
    check_input(torch.zeros(1, 2, 256, 320), bands=("a", "b"), output_stride=32)
