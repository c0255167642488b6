"""Occluding objects of the synthetic world: things the head family cannot represent.

Each object is a separate analytic field with *compact support*: its density is exactly zero outside
a thin shell around its surface, so the scene sum sigma_h + sigma_o leaves rays that miss it
untouched (bitwise). Shape, colour and trajectory are drawn from the object seed; `at(t)` gives the
field at normalised time t in [0, 1] of the video.

Kinds: ball (passes in front of the face), stick (a microphone held before the mouth), visor (a
band across the eyes), red_nose (a sphere on the nose tip), face_paint (a coloured layer on the
skin: an appearance-only change whose mask is the painted skin).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from innout.synth.head import SURFACE_WIDTH, HeadField, _capsule, _hue

OBJECT_KINDS: tuple[str, ...] = ("ball", "stick", "visor", "red_nose", "face_paint")
#: Density inside an object (per world unit).
OBJECT_DENSITY = 600.0
#: Density of the face-paint layer (it shares its space with the skin's surface).
PAINT_DENSITY = 3000.0


def compact_density(sdf: torch.Tensor, density: float = OBJECT_DENSITY) -> torch.Tensor:
    """density * smoothstep across [-2w, +2w] of the distance: exactly 0 for sdf >= 2w."""
    w = 2 * SURFACE_WIDTH
    t = ((w - sdf) / (2 * w)).clamp(0, 1)
    return density * t * t * (3 - 2 * t)


def _sphere(x: torch.Tensor, centre: torch.Tensor, radius: float) -> torch.Tensor:
    return (x - centre).norm(dim=-1) - radius


@dataclass(frozen=True)
class ObjectSpec:
    """The seeded description of one object: kind, seed and the drawn numbers (for params.json)."""

    kind: str
    seed: int
    values: dict

    def as_dict(self) -> dict:
        return {"kind": self.kind, "seed": self.seed, **self.values}


def make_object(kind: str, seed: int) -> ObjectSpec:
    """Draws the shape, colour and trajectory of an object of `kind` from `seed`."""
    if kind not in OBJECT_KINDS:
        raise ValueError(f"unknown object kind {kind!r}; known: {', '.join(OBJECT_KINDS)}")
    rng = np.random.default_rng([seed, OBJECT_KINDS.index(kind)])
    hue = float(rng.uniform())
    if kind == "ball":
        direction = float(rng.choice([-1.0, 1.0]))
        values = {
            "radius": float(rng.uniform(0.06, 0.09)),
            "hue": hue,
            "x_range": [-0.32 * direction, 0.32 * direction],
            "y": float(rng.uniform(-0.1, 0.08)),
            "z": float(rng.uniform(0.3, 0.36)),
            "arc": float(rng.uniform(0.02, 0.06)),
        }
    elif kind == "stick":
        values = {
            "head_radius": float(rng.uniform(0.03, 0.04)),
            "handle_radius": float(rng.uniform(0.013, 0.018)),
            "hue": hue,
            "x": float(rng.uniform(-0.04, 0.04)),
            "z": float(rng.uniform(0.27, 0.31)),
            "sway": float(rng.uniform(0.02, 0.05)),
            "tilt": float(rng.uniform(-0.3, 0.3)),
        }
    elif kind == "visor":
        values = {
            "hue": hue,
            "height": float(rng.uniform(0.035, 0.05)),
            "radius": float(rng.uniform(0.245, 0.26)),
            "bob": float(rng.uniform(0.005, 0.015)),
        }
    elif kind == "red_nose":
        values = {"radius": float(rng.uniform(0.028, 0.038)), "shade": float(rng.uniform(0.75, 1))}
    else:
        values = {
            "hue": hue,
            "side": float(rng.choice([-1.0, 1.0])),
            "stripes": int(rng.integers(2, 4)),
            "spread": float(rng.uniform(0.8, 1.2)),
        }
    return ObjectSpec(kind=kind, seed=seed, values=values)


class ObjectField:
    """The field of an object at one time: points [P, 3] -> (sigma [P] >= 0, rgb [P, 3] in [0,1]).

    Args:
        spec: the object's drawn description.
        t: normalised time in [0, 1] along the video (drives the trajectory).
        head: the head it sits on (the nose and the skin of red_nose and face_paint).
    """

    def __init__(self, spec: ObjectSpec, t: float, head: HeadField) -> None:
        self.spec, self.t, self.head = spec, float(t), head
        v = spec.values
        self.colour = _hue(v.get("hue", 0.0), 0.75, 0.9)
        if spec.kind == "ball":
            x0, x1 = v["x_range"]
            x = x0 + (x1 - x0) * self.t
            y = v["y"] + v["arc"] * math.sin(math.pi * self.t)
            self.centre = torch.tensor([x, y, v["z"]])
        elif spec.kind == "stick":
            phase = 2 * math.pi * self.t
            top = (v["x"] + v["sway"] * math.sin(phase), -0.135 + 0.01 * math.cos(phase), v["z"])
            bottom = (top[0] + 0.35 * math.sin(v["tilt"]), -0.5, v["z"] + 0.05)
            self.top, self.bottom = top, bottom
        elif spec.kind == "visor":
            self.y = head.eye_y + v["bob"] * math.sin(2 * math.pi * self.t)
        elif spec.kind == "red_nose":
            tip = head.nose_tip
            self.centre = torch.tensor([0.0, tip[1] - 0.008, tip[2] + 0.005])

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """Signed distance [P] of the object at points x [P, 3] (face_paint: of the paint layer)."""
        kind, v = self.spec.kind, self.spec.values
        if kind == "ball" or kind == "red_nose":
            return _sphere(x, self.centre, v["radius"])
        if kind == "stick":
            mic = _sphere(x, x.new_tensor(self.top), v["head_radius"])
            handle = _capsule(x, self.top, self.bottom, v["handle_radius"])
            return torch.minimum(mic, handle)
        if kind == "visor":
            # A band of an elliptic cylinder shell wrapped around the face, front half only.
            ax, az = 0.205, v["radius"]
            r = ((x[..., 0] / ax).square() + ((x[..., 2] + 0.02) / az).square()).sqrt()
            shell = (r - 1).abs() * ax - 0.012
            band = (x[..., 1] - self.y).abs() - v["height"]
            front = -(x[..., 2] - 0.02)
            return torch.maximum(torch.maximum(shell, band), front)
        # face_paint: a thin layer just outside the skin, inside a stripe pattern on one cheek.
        skin = self.head.parts(x)["skin"]
        layer = (skin - 0.001).abs() - 0.004
        cx, cy = 0.075 * v["side"], -0.03
        rows = (x[..., 1] - cy) / (0.026 * v["spread"])
        stripe = (0.6 - torch.cos(rows * math.pi).abs()) * 0.02
        region = (((x[..., 0] - cx) / 0.05).square() + ((x[..., 1] - cy) / 0.07).square()).sqrt()
        region = (region - 1) * 0.06
        limit = (x[..., 1] - cy).abs() - 0.026 * v["spread"] * v["stripes"] / 2
        pattern = torch.maximum(torch.maximum(stripe, region), limit)
        front = 0.08 - x[..., 2]
        return torch.maximum(torch.maximum(layer, pattern), front)

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        kind = self.spec.kind
        base = self.colour.expand(x.shape[0], 3)
        if kind == "ball":
            # Two-tone beach ball: stripes along its azimuth.
            local = x - self.centre
            angle = torch.atan2(local[..., 0], local[..., 2])
            stripe = (torch.sin(angle * 3) > 0).unsqueeze(-1)
            return torch.where(stripe, base, torch.full_like(base, 0.95))
        if kind == "stick":
            top = x.new_tensor(self.top)
            on_head = (x - top).norm(dim=-1) < self.spec.values["head_radius"] + 0.01
            # Microphone: a grey mesh head on a dark handle with a coloured ring.
            mesh = 0.55 + 0.1 * torch.sin(x[..., 0] * 400) * torch.sin(x[..., 1] * 400)
            grey = mesh.unsqueeze(-1).expand(-1, 3)
            ring = ((x[..., 1] - (self.top[1] - 0.05)).abs() < 0.012).unsqueeze(-1)
            handle = torch.where(ring, base, torch.full_like(base, 0.1))
            return torch.where(on_head.unsqueeze(-1), grey, handle)
        if kind == "visor":
            # Mirrored visor: a vertical gradient of the tint.
            g = ((x[..., 1] - self.y) / self.spec.values["height"]).unsqueeze(-1)
            return (base * (0.7 - 0.25 * g)).clamp(0, 1)
        if kind == "red_nose":
            return torch.tensor([0.9, 0.06, 0.05]).expand(x.shape[0], 3) * self.spec.values["shade"]
        return base

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Paint overlaps the skin's own density: a denser layer makes it win the colour there.
        paint = self.spec.kind == "face_paint"
        sigma = compact_density(self.sdf(x), PAINT_DENSITY if paint else OBJECT_DENSITY)
        # Shade lightly with the same light as the head (a normal from the object's distance).
        colour = torch.zeros(x.shape[0], 3)
        inside = (sigma > 0).nonzero().squeeze(-1)
        if inside.numel() > 0:
            colour[inside] = self._colour(x[inside])
            if self.spec.kind != "face_paint":
                with torch.enable_grad():
                    xg = x[inside].detach().requires_grad_(True)
                    (normal,) = torch.autograd.grad(self.sdf(xg).sum(), xg)
                normal = torch.nn.functional.normalize(normal, dim=-1)
                light = torch.nn.functional.normalize(torch.tensor([0.35, 0.55, 0.75]), dim=0)
                shade = 0.55 + 0.5 * (normal @ light).clamp_min(0)
                colour[inside] = (colour[inside] * shade.unsqueeze(-1)).clamp(0, 1)
        return sigma, colour
