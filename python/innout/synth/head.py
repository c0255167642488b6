"""The analytic head field of the synthetic world (docs/synthetic-world.md, "The world").

A stylised head as a radiance field in EG3D's FFHQ frame (+y up, the face looks toward +z,
the head inside [-0.5, 0.5]^3): smooth signed distances (ellipsoids and capsules joined by smooth
unions) turn into density through a sigmoid of width `SURFACE_WIDTH`, so that the field is smooth
enough for a tri-plane to represent it. Colour is baked (albedo times a fixed soft light),
view-independent like EG3D's decoder. A curved background surface behind the head covers every
pixel of every FFHQ camera.

Parameters (natural units; `PARAMETER_RANGES` is the single source of truth):

=============  ==============  ==========================================================
name           range           meaning
=============  ==============  ==========================================================
smile          [-1, 1]         mouth-corner curvature (-1 frown, +1 broad smile)
mouth_open     [0, 1]          lip opening (0 closed, 1 wide open)
eye_size       [0.75, 1.3]     scale of eyeballs and eye openings
hair_color     [0, 1]          black -> brown -> auburn -> blond
skin_tone      [0, 1]          dark -> light
face_width     [0.88, 1.12]    horizontal scale of the head
hairline       [0, 1]          height of the front hairline (0 low fringe, 1 receding)
brow_height    [-1, 1]         eyebrows lowered / raised (+-0.02 world units)
iris_color     [0, 1]          brown -> green -> blue
background     [0, 1]          background hue (around the colour wheel)
nose_size      [0.8, 1.2]      scale of the nose
blink          [0, 1]          eyelid closure (animation only; 0 from z)
=============  ==============  ==========================================================
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

import torch

#: name -> (low, high) of every head parameter, in the order they are read from z.
PARAMETER_RANGES: dict[str, tuple[float, float]] = {
    "smile": (-1.0, 1.0),
    "mouth_open": (0.0, 1.0),
    "eye_size": (0.75, 1.3),
    "hair_color": (0.0, 1.0),
    "skin_tone": (0.0, 1.0),
    "face_width": (0.88, 1.12),
    "hairline": (0.0, 1.0),
    "brow_height": (-1.0, 1.0),
    "iris_color": (0.0, 1.0),
    "background": (0.0, 1.0),
    "nose_size": (0.8, 1.2),
    "blink": (0.0, 1.0),
}
#: Parameters read from the first entries of z (blink is animation-only and starts at 0).
Z_PARAMETERS: tuple[str, ...] = tuple(name for name in PARAMETER_RANGES if name != "blink")

#: Width (world units) of the density's sigmoid across a surface: about one sample spacing of a
#: fine-sampled render, soft enough for a 128^2 tri-plane, sharp enough not to show a fuzzy halo.
SURFACE_WIDTH = 0.003
#: Density deep inside a solid (per world unit): a surface is opaque within ~0.01 world units.
SOLID_DENSITY = 400.0
#: The features an edit moves are sized for a 64^2 raw rendering (~108 px per world unit): an
#: eyeball's radius at eye_size 1 (3.5 px; eye_size's range moves an eye's width by ~4 px), the
#: eyes' half-spacing at face_width 1, and how far a full smile lifts the lips 5 cm from the
#: centre (the corners rise ~5 px). Smaller features are below what a tri-plane generator trained
#: for an hour on a CPU resolves, and their edits would not show.
EYE_RADIUS = 0.032
EYE_SPACING = 0.066
SMILE_LIFT = 0.036
#: Half-width of the band around the head's surface where colour is computed (world units).
SHADE_BAND = 0.04
#: Below this mouth_open the mouth has no cavity (lips closed).
MOUTH_CLOSED = 0.02
#: Box (low corner, high corner) outside which the head's parts are not evaluated (see `parts`).
HEAD_BOX = ((-0.27, -0.74, -0.32), (0.27, 0.38, 0.36))
#: Distance given to head parts outside HEAD_BOX.
FAR = 1.0


@dataclass(frozen=True)
class HeadParams:
    """One head: every parameter in natural units (see the module docstring for the ranges)."""

    smile: float = 0.0
    mouth_open: float = 0.0
    eye_size: float = 1.0
    hair_color: float = 0.3
    skin_tone: float = 0.6
    face_width: float = 1.0
    hairline: float = 0.5
    brow_height: float = 0.0
    iris_color: float = 0.5
    background: float = 0.5
    nose_size: float = 1.0
    blink: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    def clamped(self) -> HeadParams:
        """The same head with every parameter clamped into its documented range."""
        values = {
            name: min(max(value, PARAMETER_RANGES[name][0]), PARAMETER_RANGES[name][1])
            for name, value in self.as_dict().items()
        }
        return HeadParams(**values)

    def edited(self, name: str, delta: float) -> HeadParams:
        """p_name += delta, clamped into the range (the field is only defined inside it)."""
        if name not in PARAMETER_RANGES:
            raise ValueError(f"unknown head parameter {name!r}; known: {list(PARAMETER_RANGES)}")
        return replace(self, **{name: getattr(self, name) + delta}).clamped()


def params_from_z(z: torch.Tensor) -> HeadParams:
    """Head parameters of a latent z [z_dim] or [1, z_dim] (z_dim >= 11).

    The first len(Z_PARAMETERS) entries are squashed to [-1, 1] by u = erf(z / sqrt(2)) (uniform
    on [-1, 1] for z ~ N(0, 1), so every part of each range is equally likely), then mapped
    linearly onto the parameter's range; the rest of z is unused.
    """
    flat = z.detach().reshape(-1).double()
    if flat.numel() < len(Z_PARAMETERS):
        raise ValueError(f"z needs at least {len(Z_PARAMETERS)} entries, got {flat.numel()}")
    u = torch.erf(flat[: len(Z_PARAMETERS)] / math.sqrt(2.0))
    values = {}
    for index, name in enumerate(Z_PARAMETERS):
        low, high = PARAMETER_RANGES[name]
        values[name] = float(low + (u[index] + 1) * 0.5 * (high - low))
    return HeadParams(**values)


def z_with_parameter(z: torch.Tensor, name: str, value: float) -> torch.Tensor:
    """A copy of z [1, z_dim] whose head has parameter `name` = `value` (inside its range; the
    others unchanged): the inverse of `params_from_z`'s squashing for that entry."""
    if name not in Z_PARAMETERS:
        raise ValueError(f"{name!r} is not read from z; those are {list(Z_PARAMETERS)}")
    low, high = PARAMETER_RANGES[name]
    if not low <= value <= high:
        raise ValueError(f"{name} = {value} is outside its range [{low}, {high}]")
    # The ends of the range are reached only at z = +-inf: stop just inside.
    u = min(max(2 * (value - low) / (high - low) - 1, -1 + 1e-6), 1 - 1e-6)
    edited = z.clone()
    edited.reshape(-1)[Z_PARAMETERS.index(name)] = (
        math.sqrt(2.0) * torch.special.erfinv(torch.tensor(u, dtype=torch.float64)).item()
    )
    return edited


# ---------------------------------------------------------------------------------------------
# Signed-distance helpers (points [..., 3] -> distances [...]; world units).


def _ellipsoid(p: torch.Tensor, centre: tuple[float, ...], radii: tuple[float, ...]):
    """Approximate signed distance of an ellipsoid (exact on the surface, smooth everywhere)."""
    c = p.new_tensor(centre)
    r = p.new_tensor(radii)
    q = (p - c) / r
    k0 = q.norm(dim=-1)
    k1 = (q / r).norm(dim=-1)
    return k0 * (k0 - 1) / k1.clamp_min(1e-6)


def _capsule(p: torch.Tensor, a: tuple[float, ...], b: tuple[float, ...], radius: float):
    pa = p - p.new_tensor(a)
    ba = p.new_tensor(b) - p.new_tensor(a)
    h = ((pa * ba).sum(-1) / (ba * ba).sum()).clamp(0, 1)
    return (pa - h.unsqueeze(-1) * ba).norm(dim=-1) - radius


def smooth_union(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    """Polynomial smooth minimum of two distances, blending over a width k."""
    h = (0.5 + 0.5 * (b - a) / k).clamp(0, 1)
    return b + (a - b) * h - k * h * (1 - h)


def smooth_subtract(a: torch.Tensor, b: torch.Tensor, k: float) -> torch.Tensor:
    """a minus b, smoothly."""
    return -smooth_union(-a, b, k)


def smoothstep(edge0: float, edge1: float, x: torch.Tensor) -> torch.Tensor:
    t = ((x - edge0) / (edge1 - edge0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def density_of(sdf: torch.Tensor, density: float = SOLID_DENSITY) -> torch.Tensor:
    """Density (per world unit) of a solid: `density` * sigmoid(-sdf / SURFACE_WIDTH)."""
    return density * torch.sigmoid(-sdf / SURFACE_WIDTH)


def _palette(stops: list[tuple[float, float, float]], t: float) -> torch.Tensor:
    """Piecewise-linear colour [3] along evenly spaced stops, t in [0, 1]."""
    t = min(max(t, 0.0), 1.0) * (len(stops) - 1)
    i = min(int(t), len(stops) - 2)
    a, b = torch.tensor(stops[i]), torch.tensor(stops[i + 1])
    return a + (b - a) * (t - i)


def _hue(h: float, saturation: float, value: float) -> torch.Tensor:
    """HSV -> RGB [3] for a hue h in [0, 1]."""
    k = (torch.tensor([5.0, 3.0, 1.0]) + h * 6) % 6
    return value - value * saturation * torch.clamp(torch.minimum(k, 4 - k), 0, 1)


SKIN = [(0.33, 0.2, 0.13), (0.62, 0.42, 0.3), (0.93, 0.76, 0.64)]
HAIR = [(0.06, 0.05, 0.05), (0.3, 0.17, 0.08), (0.55, 0.22, 0.08), (0.88, 0.74, 0.42)]
IRIS = [(0.35, 0.2, 0.08), (0.25, 0.5, 0.25), (0.2, 0.42, 0.8)]
#: Direction toward the baked light (up, right, toward the camera).
LIGHT = (0.35, 0.55, 0.75)


class HeadField:
    """The analytic head of one set of parameters: density and colour at world points.

    Call it on points [P, 3] to get (sigma [P] density per world unit >= 0, rgb [P, 3] in [0, 1]).
    """

    def __init__(self, params: HeadParams) -> None:
        self.params = params.clamped()
        p = self.params
        self.fw = p.face_width
        self.eye_y = 0.035
        self.eye_x = EYE_SPACING * p.face_width
        self.eye_r = EYE_RADIUS * p.eye_size
        self.eye_z = 0.152
        self.mouth_y = -0.105
        self.nose_tip = (0.0, -0.03, 0.2 + 0.025 * p.nose_size)
        self.skin = _palette(SKIN, p.skin_tone)
        self.hair = _palette(HAIR, p.hair_color)
        self.iris = _palette(IRIS, p.iris_color)
        self.background = _hue(p.background, 0.35, 0.8)
        self.lips = self.skin * torch.tensor([0.85, 0.5, 0.5]) + torch.tensor([0.12, 0.0, 0.02])

    # -- geometry ------------------------------------------------------------------------------

    def _skin_sdf(self, x: torch.Tensor) -> torch.Tensor:
        """Signed distance of the skin (skull, jaw, neck, nose, ears) minus the open mouth."""
        p, fw = self.params, self.fw
        d = _ellipsoid(x, (0.0, 0.04, -0.01), (0.155 * fw, 0.2, 0.185))
        jaw = _ellipsoid(x, (0.0, -0.07, 0.035), (0.11 * fw, 0.12, 0.13))
        d = smooth_union(d, jaw, 0.06)
        neck = _capsule(x, (0.0, -0.12, -0.03), (0.0, -0.6, -0.06), 0.075)
        d = smooth_union(d, neck, 0.04)
        s = p.nose_size
        bridge = _capsule(
            x, (0.0, 0.03, 0.175), (0.0, self.nose_tip[1], self.nose_tip[2]), 0.016 * s
        )
        tip = _ellipsoid(x, (0.0, self.nose_tip[1] - 0.005, self.nose_tip[2] - 0.02),
                         (0.03 * s, 0.022 * s, 0.025 * s))  # fmt: skip
        d = smooth_union(d, smooth_union(bridge, tip, 0.015), 0.02)
        ears = _ellipsoid(
            torch.stack([x[..., 0].abs(), x[..., 1], x[..., 2]], -1),
            (0.152 * fw, 0.02, -0.01),
            (0.02, 0.045, 0.03),
        )
        d = smooth_union(d, ears, 0.015)
        # Eye sockets: shallow dents so that the eyeballs sit in the face.
        sockets = _ellipsoid(
            torch.stack([x[..., 0].abs(), x[..., 1], x[..., 2]], -1),
            (self.eye_x, self.eye_y, self.eye_z + 0.01),
            (1.35 * self.eye_r, 0.85 * self.eye_r, 0.02),
        )
        d = smooth_subtract(d, sockets, 0.012)
        if p.mouth_open > MOUTH_CLOSED:
            d = smooth_subtract(d, self._cavity_sdf(x), 0.008)
        return d

    def _cavity_sdf(self, x: torch.Tensor) -> torch.Tensor:
        """The open mouth: an ellipsoid bent along the mouth line (so it follows the smile)."""
        bent = x[..., 1] - (self._mouth_line(x[..., 0]) - self.mouth_y)
        q = torch.stack([x[..., 0], bent, x[..., 2]], -1)
        open_ = self.params.mouth_open
        return _ellipsoid(q, (0.0, self.mouth_y, 0.16), (0.045, 0.004 + 0.03 * open_, 0.05))

    def _mouth_line(self, px: torch.Tensor) -> torch.Tensor:
        """Height [...] of the lips' meeting line at x: a parabola whose curvature is the smile."""
        return self.mouth_y + SMILE_LIFT * self.params.smile * (px / 0.05).square()

    def _hair_sdf(self, x: torch.Tensor) -> torch.Tensor:
        p, fw = self.params, self.fw
        cap = _ellipsoid(x, (0.0, 0.055, -0.025), (0.168 * fw, 0.212, 0.198))
        # Hair above a tilted plane: high at the forehead (the hairline), low at the nape.
        front = 0.115 + 0.07 * p.hairline
        cut = (front + 0.85 * (x[..., 2] - 0.19)).clamp_max(front)
        # Lower at the sides (sideburns down to the ears).
        cut = cut - 0.6 * x[..., 0].square() / fw**2
        below = cut - x[..., 1]
        return torch.maximum(cap, below)

    def _eye_sdf(self, x: torch.Tensor) -> torch.Tensor:
        q = torch.stack([x[..., 0].abs(), x[..., 1], x[..., 2]], -1)
        return _ellipsoid(q, (self.eye_x, self.eye_y, self.eye_z), (self.eye_r,) * 3)

    @staticmethod
    def _background_sdf(x: torch.Tensor) -> torch.Tensor:
        """A bowl z = -0.42 + 1.6 x^2 + 0.9 y^2 behind the head (distance along z): curved so that
        the rays of every FFHQ camera (|yaw| <= 0.45) meet it inside the tri-plane cube."""
        return x[..., 2] - (-0.42 + 1.6 * x[..., 0].square() + 0.9 * x[..., 1].square())

    # -- appearance ------------------------------------------------------------------------------

    def _skin_color(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        px, py, pz = x[..., 0], x[..., 1], x[..., 2]
        front = smoothstep(0.05, 0.12, pz)  # the features are painted on the face only
        colour = self.skin.expand(*x.shape[:-1], 3).clone()
        # Cheeks: a little blush.
        cheek = torch.exp(-((px.abs() - 0.08) ** 2 + (py + 0.04) ** 2) / 0.0012) * front
        colour = colour + cheek.unsqueeze(-1) * torch.tensor([0.08, -0.02, -0.02])
        # Eyebrows: arched bands of hair colour above the eyes.
        brow_y = self.eye_y + 0.054 + 0.02 * p.brow_height - 3.0 * (px.abs() - self.eye_x) ** 2
        brow = smoothstep(0.009, 0.004, (py - brow_y).abs())
        brow = brow * smoothstep(0.075, 0.065, (px.abs() - self.eye_x).abs() * 1.6) * front
        colour = torch.lerp(colour, (self.hair * 0.7).expand_as(colour), brow.unsqueeze(-1))
        # Lips: two bands around the mouth line, their gap the open mouth.
        line = self._mouth_line(px)
        gap = 0.002 + 0.03 * p.mouth_open
        # Distance across the curved mouth line, not straight down: the lips keep their thickness
        # where a broad smile or frown makes the line steep.
        slope = 2 * SMILE_LIFT * p.smile * px / 0.05**2
        dy = (py - line) / (1 + slope.square()).sqrt()
        width = smoothstep(0.058, 0.045, px.abs()) * front
        lips = smoothstep(gap + 0.018, gap + 0.011, dy.abs()) * width
        colour = torch.lerp(colour, self.lips.expand_as(colour), lips.unsqueeze(-1))
        inner = smoothstep(gap + 0.002, gap * 0.5, dy.abs()) * width
        colour = torch.lerp(colour, torch.tensor([0.18, 0.04, 0.05]).expand_as(colour),
                            inner.unsqueeze(-1))  # fmt: skip
        # Inside the mouth cavity (its walls, behind the lips): dark.
        if p.mouth_open > MOUTH_CLOSED:
            inside = smoothstep(0.006, 0.0, self._cavity_sdf(x)).unsqueeze(-1)
            colour = torch.lerp(colour, torch.tensor([0.2, 0.04, 0.05]).expand_as(colour), inside)
        return colour

    def _eye_color(self, x: torch.Tensor) -> torch.Tensor:
        p = self.params
        q = torch.stack([x[..., 0].abs(), x[..., 1], x[..., 2]], -1)
        local = (q - q.new_tensor((self.eye_x, self.eye_y, self.eye_z))) / self.eye_r
        # Gaze: straight ahead (+z). Polar distance from the front pole.
        radial = (local[..., 0].square() + local[..., 1].square()).sqrt()
        colour = torch.full((*x.shape[:-1], 3), 0.95)
        iris = smoothstep(0.62, 0.5, radial).unsqueeze(-1) * (local[..., 2] > 0).unsqueeze(-1)
        colour = torch.lerp(colour, self.iris.expand_as(colour), iris)
        pupil = smoothstep(0.3, 0.22, radial).unsqueeze(-1) * (local[..., 2] > 0).unsqueeze(-1)
        colour = torch.lerp(colour, torch.tensor([0.03, 0.03, 0.03]).expand_as(colour), pupil)
        # Eyelids: skin above and below an almond opening that closes with `blink`.
        half_open = 0.75 * (1 - p.blink) * (1 - local[..., 0].square()).clamp_min(0).sqrt()
        lid = smoothstep(half_open - 0.12, half_open + 0.02, local[..., 1].abs())
        lid = torch.maximum(lid, smoothstep(-0.1, -0.3, local[..., 2]))
        colour = torch.lerp(colour, (self.skin * 0.92).expand_as(colour), lid.unsqueeze(-1))
        return colour

    def _hair_color(self, x: torch.Tensor) -> torch.Tensor:
        # Soft strands: a gentle stripe pattern along the head's azimuth.
        angle = torch.atan2(x[..., 0], x[..., 2] + 0.05)
        strands = 0.88 + 0.12 * torch.sin(angle * 40 + 8 * x[..., 1]).unsqueeze(-1)
        return (self.hair * strands).clamp(0, 1)

    def _background_color(self, x: torch.Tensor) -> torch.Tensor:
        shade = (1.0 + 0.5 * x[..., 1] - 0.2 * x[..., 0]).clamp(0.5, 1.2).unsqueeze(-1)
        return (self.background * shade).clamp(0, 1)

    # -- field -----------------------------------------------------------------------------------

    def parts(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Signed distances [P] of the parts: skin, hair, eyes, background.

        The head's parts are only evaluated inside `HEAD_BOX` (which clears every part by more
        than 0.05); outside it they read `FAR`. There the true distance exceeds 0.05, so the
        density it would give is below 400 sigmoid(-0.05 / 0.003) < 1e-4: culling changes no
        render visibly and halves the cost.
        """
        low, high = x.new_tensor(HEAD_BOX[0]), x.new_tensor(HEAD_BOX[1])
        inside = ((x >= low) & (x <= high)).all(-1).nonzero().squeeze(-1)
        dense = self._parts_dense(x[inside])
        out = {"background": self._background_sdf(x)}
        for name in ("skin", "hair", "eyes"):
            out[name] = x.new_full(x.shape[:-1], FAR).index_copy(0, inside, dense[name])
        return out

    def _parts_dense(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"skin": self._skin_sdf(x), "hair": self._hair_sdf(x), "eyes": self._eye_sdf(x)}

    def sdf(self, x: torch.Tensor) -> torch.Tensor:
        """Signed distance [P] of the whole head (without the background)."""
        d = self.parts(x)
        return torch.minimum(torch.minimum(d["skin"], d["hair"]), d["eyes"])

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density [P] (per world unit) and colour [P, 3] in [0, 1] at points x [P, 3]."""
        d = self.parts(x)
        head = torch.minimum(torch.minimum(d["skin"], d["hair"]), d["eyes"])
        # Colour only matters where a ray can still see it: near the head's surface. Deeper
        # inside, transmittance is below e^-10; farther out, density is below 1e-4. Skipping those
        # points (a fixed, deterministic rule) makes a render several times faster.
        near = (head.abs() < SHADE_BAND).nonzero().squeeze(-1)
        colour = self.skin.expand(x.shape[0], 3).clone()
        if near.numel() > 0:
            colour[near] = self._shade(x[near])
        sigma_head = density_of(head)
        sigma_back = density_of(d["background"])
        total = sigma_head + sigma_back
        share = (sigma_back / total.clamp_min(1e-12)).unsqueeze(-1)
        colour = colour + share * (self._background_color(x) - colour)
        return total, colour

    def _shade(self, x: torch.Tensor) -> torch.Tensor:
        """Shaded colour [P, 3] of head points x [P, 3] near the surface."""
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            d = self._parts_dense(xg)
            head = torch.minimum(torch.minimum(d["skin"], d["hair"]), d["eyes"])
            # Shading normal of the head surface, from the distance's gradient.
            (normal,) = torch.autograd.grad(head.sum(), xg)
        d = {k: v.detach() for k, v in d.items()}
        normal = torch.nn.functional.normalize(normal, dim=-1)
        light = normal.new_tensor(LIGHT) / math.sqrt(sum(v * v for v in LIGHT))
        shade = (0.5 + 0.55 * (normal @ light).clamp_min(0)).unsqueeze(-1)
        # Weights of the parts by proximity (soft so that colour is smooth across seams).
        w_eye = smoothstep(0.004, -0.002, d["eyes"] - torch.minimum(d["skin"], d["hair"]))
        w_hair = smoothstep(0.006, -0.006, d["hair"] - d["skin"]) * (1 - w_eye)
        colour = self._skin_color(x)
        colour = torch.lerp(colour, self._hair_color(x), w_hair.unsqueeze(-1))
        colour = torch.lerp(colour, self._eye_color(x), w_eye.unsqueeze(-1))
        return (colour * shade).clamp(0, 1)
