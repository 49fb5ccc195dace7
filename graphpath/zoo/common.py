"""Shared pieces of graphpath's reference builders: blocks that know their kind, Conv-BN-act,
BN fusion, seeded initialisation, ONNX export and the manifest entry.

Ground truth is recorded while the model is constructed: every block of graphpath's vocabulary
is an instance of :class:`Block` created with its kind id (the ids of TOPOLOGIES.md), so the
manifest is read off the module tree, never typed by hand. A block nested in another block
(a residual inside a C2f) is that block's child in ``block_tree``.
"""

from __future__ import annotations

import hashlib
import io
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

OPSET = 17

BLOCK_KINDS = frozenset(
    """plain_stage passthrough residual scaled_residual csp c2f c3k2 elan e_elan mp gelan adown
    spp sppf sppcspc sppelan repvgg fpn pan attention psa c2psa a2c2f scdown c2fcib fc_head
    coupled_head decoupled_head dfl aux_head one2one_head nms pgi""".split()
)


class Block(nn.Module):
    """A module that is one block of graphpath's vocabulary.

    Subclasses call ``super().__init__("c2f")``; the kind is what the manifest counts.
    """

    def __init__(self, kind: str) -> None:
        super().__init__()
        if kind not in BLOCK_KINDS:
            raise ValueError(f"unknown block kind {kind!r}")
        self.block_kind = kind


class Marker(Block):
    """A block with no computation of its own, for structure that is wiring between modules
    (an FPN/PAN merge done inside a neck's forward, a whole-model PGI marker). It wraps the
    modules that make it so nesting stays truthful; ``forward`` is never called."""

    def __init__(self, kind: str, **members: nn.Module) -> None:
        super().__init__(kind)
        for key, mod in members.items():
            self.add_module(key, mod)


ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "silu": nn.SiLU,
    "relu": nn.ReLU,
    "leaky": lambda: nn.LeakyReLU(0.1),
    "mish": nn.Mish,
    "hardswish": nn.Hardswish,
    "none": nn.Identity,
}


class Conv(nn.Module):
    """Conv2d + BatchNorm2d + activation, the unit every YOLO generation is built from.

    ``fuse_bn`` folds the BN into the conv before export, as deploy exports do.
    """

    def __init__(
        self, c1: int, c2: int, k: int = 1, s: int = 1, p: int | None = None,
        g: int = 1, act: str = "silu", d: int = 1,
    ) -> None:
        super().__init__()
        pad = d * (k - 1) // 2 if p is None else p
        self.conv = nn.Conv2d(c1, c2, k, s, pad, dilation=d, groups=g, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = ACTIVATIONS[act]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def scaled(channels: float, width: float, divisor: int = 8) -> int:
    """Channels after the width factor, rounded up to a multiple of ``divisor`` (at least it)."""
    return max(divisor, int(math.ceil(channels * width / divisor) * divisor))


def init_weights(model: nn.Module, seed: int) -> None:
    """Seeded init like the originals (Kaiming-uniform convs), with BN statistics and biases
    perturbed so that no two initializers are byte-identical (exporters alias identical
    initializers through Identity nodes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
                fan_in = mod.weight[0].numel()
                bound = 1.0 / math.sqrt(fan_in) * math.sqrt(3.0)
                mod.weight.copy_((torch.rand(mod.weight.shape, generator=gen) * 2 - 1) * bound)
                if mod.bias is not None:
                    mod.bias.copy_((torch.rand(mod.bias.shape, generator=gen) - 0.5) * 0.02)
            elif isinstance(mod, nn.BatchNorm2d):
                n = mod.num_features
                mod.weight.copy_(1.0 + 0.1 * (torch.rand(n, generator=gen) - 0.5))
                mod.bias.copy_(0.02 * (torch.rand(n, generator=gen) - 0.5))
                mod.running_mean.copy_(0.05 * (torch.rand(n, generator=gen) - 0.5))
                mod.running_var.copy_(1.0 + 0.1 * torch.rand(n, generator=gen))
            elif isinstance(mod, nn.LayerNorm) and mod.elementwise_affine:
                n = mod.weight.numel()
                mod.weight.copy_(1.0 + 0.1 * (torch.rand(n, generator=gen) - 0.5))
                mod.bias.copy_(0.02 * (torch.rand(n, generator=gen) - 0.5))
        # Remaining free parameters (learned scales, anchors) get a unique perturbation too.
        owned = {
            id(q)
            for m in model.modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d, nn.LayerNorm))
            for q in m.parameters()
        }
        for p in model.parameters():
            if id(p) not in owned:
                p.add_(1e-3 * torch.rand(p.shape, generator=gen))


def fuse_bn(model: nn.Module) -> nn.Module:
    """Fold every ``Conv``'s BatchNorm into its conv weight and bias, in place."""
    for mod in model.modules():
        if isinstance(mod, Conv) and isinstance(mod.bn, nn.BatchNorm2d):
            conv, bn = mod.conv, mod.bn
            std = torch.sqrt(bn.running_var + bn.eps)
            scale = bn.weight / std
            fused = nn.Conv2d(
                conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                conv.padding, dilation=conv.dilation, groups=conv.groups, bias=True,
            )
            with torch.no_grad():
                fused.weight.copy_(conv.weight * scale.reshape(-1, 1, 1, 1))
                fused.bias.copy_(bn.bias - bn.running_mean * scale)
            mod.conv = fused
            mod.bn = nn.Identity()
    return model


def block_tree(model: nn.Module) -> list[dict[str, Any]]:
    """The model's blocks as a forest: each node ``{"kind", "scope", "children"}``, where a
    block's parent is its nearest enclosing block. ``scope`` is the module path, which is the
    TorchScript name scope of the exported nodes (``model.2.m.0``)."""
    roots: list[dict[str, Any]] = []
    stack: list[tuple[str, dict[str, Any]]] = []
    for name, mod in model.named_modules():  # pre-order: parents before children
        if not isinstance(mod, Block):
            continue
        node = {"kind": mod.block_kind, "scope": name, "children": []}
        while stack and not name.startswith(stack[-1][0] + "."):
            stack.pop()
        (stack[-1][1]["children"] if stack else roots).append(node)
        stack.append((name, node))
    return roots


def count_blocks(tree: list[dict[str, Any]]) -> dict[str, int]:
    """Flat count of every block kind in a block tree, nested blocks included."""
    counts: Counter[str] = Counter()
    todo = list(tree)
    while todo:
        node = todo.pop()
        counts[node["kind"]] += 1
        todo.extend(node["children"])
    return dict(sorted(counts.items()))


@dataclass(frozen=True)
class ZooSpec:
    """One reference model: how to build it and what it is."""

    name: str
    generation: str
    scale: str
    form: str  # "deploy" | "training"
    width: float
    imgsz: int
    builder: Callable[[float, int], nn.Module]
    output_names: tuple[str, ...]
    auxiliary_outputs: tuple[str, ...] = ()
    seed: int = 0
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


ZOO: dict[str, ZooSpec] = {}


def register(spec: ZooSpec) -> ZooSpec:
    if spec.name in ZOO:
        raise ValueError(f"duplicate zoo model {spec.name!r}")
    ZOO[spec.name] = spec
    return spec


def export_bytes(model: nn.Module, imgsz: int, output_names: tuple[str, ...]) -> bytes:
    """Export with the TorchScript exporter at opset 17, BN fused, in eval mode."""
    model.eval()
    fuse_bn(model)
    x = torch.zeros(1, 3, imgsz, imgsz)
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            model, (x,), buf, dynamo=False, opset_version=OPSET,
            input_names=["images"], output_names=list(output_names),
            do_constant_folding=True,
        )
    return buf.getvalue()


def build(
    spec: ZooSpec, out_dir: Path, width: float | None = None, imgsz: int | None = None,
    write: Callable[[Path, bytes], None] | None = None,
) -> dict[str, Any]:
    """Build, export and write one model (with ``write``, default a plain write); return its
    manifest entry."""
    w = spec.width if width is None else width
    size = spec.imgsz if imgsz is None else imgsz
    torch.manual_seed(spec.seed)
    model = spec.builder(w, size)
    init_weights(model, spec.seed)
    tree = block_tree(model)
    params = sum(p.numel() for p in model.parameters())
    data = export_bytes(model, size, spec.output_names)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{spec.name}.onnx"
    (write or Path.write_bytes)(path, data)
    return {
        "name": spec.name,
        "file": path.name,
        "generation": spec.generation,
        "scale": spec.scale,
        "width": w,
        "form": spec.form,
        "imgsz": size,
        "outputs": [
            {"name": n, "auxiliary": n in spec.auxiliary_outputs} for n in spec.output_names
        ],
        "block_counts": count_blocks(tree),
        "block_tree": tree,
        "torch_params": params,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "notes": spec.notes,
    }
