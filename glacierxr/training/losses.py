"""The paper's training loss: two-class soft Dice (Peng et al. 2023, Eq. 10) plus cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from glacierxr.errors import InputShapeError

__all__ = ["IGNORE", "dice_loss", "dice_ce_loss"]

#: Label of pixels that take no part in the loss or the metrics (a band missing there).
IGNORE = 255


def _check(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.ndim != 4 or target.ndim != 3 or logits.shape[0] != target.shape[0] \
            or logits.shape[-2:] != target.shape[-2:]:
        raise InputShapeError(
            f"need logits (N, K, H, W) and target (N, H, W) with matching N, H, W; "
            f"got {tuple(logits.shape)} and {tuple(target.shape)}"
        )


def dice_loss(logits: torch.Tensor, target: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """Soft Dice loss averaged over the classes (two here: background and glacier).

    ``L = 1 - (1/K) sum_k (2 sum_i p_ik g_ik + eps) / (sum_i p_ik + sum_i g_ik + eps)`` with ``p`` the
    softmax probabilities and ``g`` the one-hot target, summed over every pixel of the batch
    except those labelled :data:`IGNORE`.
    """
    _check(logits, target)
    k = logits.shape[1]
    prob = logits.float().softmax(dim=1)
    target = target.long()
    valid = target != IGNORE
    onehot = F.one_hot(torch.where(valid, target, 0), k).permute(0, 3, 1, 2).to(prob.dtype)
    if not bool(valid.all()):
        keep = valid[:, None].to(prob.dtype)
        prob, onehot = prob * keep, onehot * keep
    dims = (0, 2, 3)
    inter = (prob * onehot).sum(dims)
    denom = prob.sum(dims) + onehot.sum(dims)
    dice = (2 * inter + eps) / (denom + eps)
    return 1 - dice.mean()


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, *, dice_weight: float = 1.0,
                 ce_weight: float = 1.0) -> torch.Tensor:
    """``dice_weight * dice_loss + ce_weight * cross_entropy`` for logits ``(N, 2, H, W)``, target ``(N, H, W)``.

    Pixels labelled :data:`IGNORE` count in neither term (a batch of nothing else has loss 0).
    """
    _check(logits, target)
    target = target.long()
    if not bool((target != IGNORE).any()):
        return logits.sum() * 0.0
    ce = F.cross_entropy(logits.float(), target, ignore_index=IGNORE)
    return dice_weight * dice_loss(logits, target) + ce_weight * ce
