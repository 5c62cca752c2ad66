"""Gradient-norm clipping by scope (``train.clip_scope``).

- ``global``: one norm over every trainable parameter (the usual clip).
- ``tap-apart``: the tapped A matrices, where the representation terms' large gradients
  land, are clipped apart from the rest. With the tap at the lowest adapted layer's input
  the label's parameters are then clipped exactly as in ``sft``.
- ``term-apart``: the label term's gradient and the representation terms' gradient are
  clipped each by its own norm, then added. Neither term's size changes the other's step,
  wherever the tap sits, so a tap whose gradients run through the label's layers can be
  trained without the representation terms shrinking the label's updates (and the other
  way round). It needs one extra ``autograd.grad`` over the representation terms, whose
  graph (the A-tap pass) is separate from the label pass's, so it costs no second backward.
"""

from __future__ import annotations

import torch

from flipkd.student import Student
from flipkd.student.lora import lora_a, lora_matrix_role

# train.grad_route -> the LoRA matrices (lora_matrix_role) the label's gradient and the
# representation terms' gradient may update; a parameter of no LoRA matrix takes both
ROUTES = {
    "shared": ({"A", "B"}, {"A", "B"}),
    "split": ({"B"}, {"A"}),
    "rep-a": ({"A", "B"}, {"A"}),
}

# scope -> the log names of the groups ``clip_groups`` returns (term-apart: the label's
# gradient; the representation terms' is named by TermApart)
GROUP_NAMES = {"global": ("all",), "tap-apart": ("tap", "rest"), "term-apart": ("gen",)}


def clip_groups(student: Student, params: list, scope: str) -> list[list]:
    """The parameter sets whose gradient norms are clipped one by one (``p.grad`` only).

    ``term-apart`` clips by loss term, not by parameter: its one set is every parameter
    (the label's gradient), and :class:`TermApart` clips the representation terms' gradient.
    """
    if scope in ("global", "term-apart"):
        return [params]
    tap = {id(lora_a(layer, student.tap.adapter).weight) for layer in student.tap.layers}
    sets = [[p for p in params if id(p) in tap], [p for p in params if id(p) not in tap]]
    return [s for s in sets if s]


def clip(acc, groups: list[list], scope: str, max_norm: float) -> dict[str, float]:
    """Clip each group's gradient to ``max_norm``; each group's norm before, for the log."""
    names = GROUP_NAMES[scope][-len(groups) :]  # tap-apart without a tapped A: the rest
    return {
        f"grad_norm/{name}": float(acc.clip_grad_norm_(group, max_norm))
        for name, group in zip(names, groups, strict=True)
    }


class TermApart:
    """The representation terms' gradient, kept apart from the label's until the clip.

    Per micro-batch, :meth:`add` takes the gradient of the weighted representation terms
    (``autograd.grad``: nothing is written to ``p.grad``, no engine hook runs); the label's
    gradient goes through the engine's ``backward`` into ``p.grad`` as usual. At the
    optimizer step :meth:`apply` averages the buffer over processes (as the engine averages
    ``p.grad``), clips each of the two by its own norm and adds the buffer to ``p.grad``.

    Given ``names`` (as ``named_parameters`` gives them) and a ``route`` other than
    ``shared`` (:data:`ROUTES`), each gradient first loses the LoRA matrices its term may
    not update, so the clip norms are of what is applied.
    """

    def __init__(
        self,
        params: list[torch.nn.Parameter],
        names: list[str] | None = None,
        route: str = "shared",
    ):
        self.params = params
        self.buf: list[torch.Tensor] | None = None
        gen_roles, rep_roles = ROUTES[route]
        roles = [lora_matrix_role(n) for n in names] if names else [None] * len(params)
        if len(roles) != len(params):
            raise ValueError(f"TermApart: {len(names)} names for {len(params)} parameters")
        # indices of the parameters each term may not update
        self.gen_off = [i for i, r in enumerate(roles) if r is not None and r not in gen_roles]
        self.rep_off = [i for i, r in enumerate(roles) if r is not None and r not in rep_roles]

    def add(self, rep_loss: torch.Tensor, scale: float) -> None:
        """Accumulate ``scale ·`` the gradient of ``rep_loss`` (graph kept for the label)."""
        grads = torch.autograd.grad(
            rep_loss * scale, self.params, retain_graph=True, allow_unused=True
        )
        grads = [
            torch.zeros_like(p) if g is None else g.detach()
            for p, g in zip(self.params, grads, strict=True)
        ]
        if self.buf is None:
            self.buf = grads
        else:
            torch._foreach_add_(self.buf, grads)

    def apply(self, acc, max_norm: float, rep_max_norm: float | None = None) -> dict[str, float]:
        """Clip the label's ``p.grad`` (to ``max_norm``) and the kept gradient (to
        ``rep_max_norm``, by default the same) apart, then add them; the norms."""
        if self.buf is not None:  # a step without a representation term trains everything
            for i in self.gen_off:
                self.params[i].grad = None
        out = clip(acc, [self.params], "term-apart", max_norm)
        if self.buf is None:  # no representation term this step (e.g. rep terms weighted 0)
            return out
        buf = self.buf
        for i in self.rep_off:
            buf[i] = torch.zeros_like(buf[i])
        if acc.num_processes > 1:
            buf = [acc.reduce(b, reduction="mean") for b in buf]
        rep_norm = torch.nn.utils.get_total_norm(buf)
        rep_max = max_norm if rep_max_norm is None else rep_max_norm
        coef = torch.clamp(rep_max / (rep_norm + 1e-6), max=1.0)
        for p, g in zip(self.params, buf, strict=True):
            if p.grad is None:
                p.grad = g * coef
            else:
                p.grad.add_(g * coef)
        self.buf = None
        out["grad_norm/rep"] = float(rep_norm)
        return out
