"""Small synthetic data sets in the exact folder layouts of the real ones, for the demo and the tests.

Under <root>/:
    cityscapes/leftImg8bit/{train,val}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    cityscapes/gtFine/{train,val}/<city>/<city>_<seq>_<frame>_gtFine_label{Ids,TrainIds}.png
    COCO/2017/annotations/instances_train2017.json, COCO/2017/train2017/<id:012d>.jpg
    lost_and_found/leftImg8bit/test/<city>/..._leftImg8bit.png, gtCoarse/test/<city>/..._gtCoarse_labelIds.png
    fishyscapes/{Static,LostAndFound}/<name>.png (labels 0/1/255) beside <name>.jpg
or, with --fishyscapes_layout official, the Fishyscapes archives' files (docs/BENCHMARKS.md section 1):
    fishyscapes/Static/<fs id:04d>_<Cityscapes val frame id>_labels.png with ..._rgb.npz, the overlay
        on that generated Cityscapes val scene (the first n_fishyscapes of them),
    fishyscapes/LostAndFound/<fs id:04d>_<LostAndFound frame id>_labels.png, those frames' scenes
        written to lost_and_found/ as well: leftImg8bit/{train,test}/ and gtCoarse/{train,test}/
        (the train split for even fs ids, the test split for odd ones)
and, with --smiyc, the SegmentMeIfYouCan sets (docs/BENCHMARKS.md section 2), a few frames each:
    segment_me/dataset_AnomalyTrack/images/<fid>.jpg (RoadAnomaly21: ANOMALY_FRAMES, of several sizes,
        some odd), labels_masks/<fid>_labels_semantic.png for the validation frames only (the test
        labels are withheld, as in the archive)
    segment_me/dataset_ObstacleTrack/images/<fid>.webp (RoadObstacle21: OBSTACLE_FRAMES, validation,
        test and extra scenes, two of the excluded validation frames among them), labels_masks/... for
        the validation scene
    lost_and_found_testnoknown/leftImg8bit/test/... and gtCoarse/test/... (LostAndFound-testNoKnown:
        NO_KNOWN_FRAMES, with frames of every exclusion rule)

The Cityscapes-like scenes are perspective street views painted from textured shapes; every
class has its own colour and texture statistics (with variation per instance and per image) and
its place in the layout, so a small network learns them in minutes on a CPU. Those scenes only
use greys, browns, muted blues and greens, olive and skin tones. The OoD objects -- COCO proxy
objects as well as the LostAndFound obstacles and the objects pasted into Fishyscapes scenes --
come from one other family: saturated magenta/purple, turquoise, orange and red, in stripes,
checks, dots, rings, speckles or blotches, with random polygon, star, blob and ring shapes. So,
as with real COCO and real road obstacles, nothing in training looks like them, and entropy
maximization on the COCO objects can generalize to the test obstacles.

The COCO-like images show these objects, about 1.2 per 100 x 100 pixels with radii of 3..36 px
(the sizes of the test obstacles), on asphalt painted like the street scenes' road. Their
unannotated background is trained as road (the reference's default), so it must look like road:
on a backdrop unlike any street scene, a small network learns to raise its entropy on whole
COCO images (their context) instead of on the objects, and that does not carry over to
obstacles in street scenes.

Default counts (a demo of about 3 minutes on a CPU): 80 Cityscapes train and 16 val scenes; 80 COCO images,
of which those coco_has_excluded_class() picks contain an excluded class (person, car, ...) and
those coco_is_small() picks are smaller than 480 px on one side, so coco_kept_count(80) = 48
survive the preparation filter (24 are drawn per epoch at the demo's subsampling factor 0.3);
16 LostAndFound test scenes; 8 Fishyscapes scenes per split. The default size is 128x256 (COCO
images are 480..520 px a side, as the filter needs).

Deterministic: every image has its own generator seeded by (seed, data set, index), so the same
seed gives byte-identical files and changing one count leaves the other images unchanged.
<root>/demo_seed.txt records the seed; a root holding another seed's data is refused, as
overwriting only some of its files (and of the COCO masks prepared from them) would mix the two.
"""
import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw
from pycocotools import mask as mask_utils

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from src.atomic import atomic_path  # noqa: E402
from src.dataset.cityscapes import LABEL_TO_TRAIN_ID  # noqa: E402
from src.dataset.lost_and_found import NON_HAZARD_IDS as LAF_NON_HAZARD_IDS, OBJECT_IDS as LAF_OBJECT_IDS  # noqa: E402
from src.errors import MetaOodError, run_main  # noqa: E402

logger = logging.getLogger(__name__)

# Cityscapes label ids (cityscapesscripts' table) of the classes drawn.
EGO, ROAD, SIDEWALK, BUILDING, WALL, FENCE, POLE = 1, 7, 8, 11, 12, 13, 17
LIGHT, SIGN, VEGETATION, TERRAIN, SKY, PERSON, CAR = 19, 20, 21, 22, 23, 24, 26
CITYSCAPES_CITIES = {"train": ("aachen", "bochum", "bremen"), "val": ("frankfurt", "lindau", "munster")}
LAF_CITIES = ("02_Hanns_Klemm_Str_44", "04_Maurener_Weg_8", "07_Festplatz_Flugfeld")



class Style(NamedTuple):
    """How a Cityscapes-like class is painted."""
    colour: tuple  # RGB
    jitter: float  # per-instance colour jitter (std)
    grain: float  # pixel grain (std)
    blotch: float  # blotch amplitude
    cell: int  # blotch size in px


STYLE = {
    ROAD: Style((82, 82, 88), 6, 6, 4, 24),
    SIDEWALK: Style((160, 140, 148), 8, 3, 5, 12),
    BUILDING: Style((135, 126, 116), 12, 4, 8, 16),
    WALL: Style((178, 174, 165), 8, 3, 4, 8),
    FENCE: Style((105, 115, 130), 6, 2, 2, 8),
    POLE: Style((95, 95, 98), 8, 3, 2, 8),
    LIGHT: Style((35, 35, 38), 4, 3, 2, 8),
    SIGN: Style((35, 65, 155), 10, 3, 3, 8),
    VEGETATION: Style((55, 105, 40), 10, 14, 14, 3),
    TERRAIN: Style((150, 150, 90), 10, 6, 8, 8),
    SKY: Style((140, 180, 220), 10, 1, 6, 32),
    EGO: Style((25, 25, 28), 3, 2, 2, 16),
}
CAR_COLOURS = ((30, 30, 34), (170, 172, 178), (222, 222, 225), (85, 85, 90), (45, 50, 85), (110, 100, 90))
CLOTHING = ((60, 60, 70), (90, 80, 70), (120, 120, 125), (40, 50, 70), (150, 140, 120))
SKIN = (205, 165, 135)
# Hue ranges (degrees) of the OoD family: none is used, saturated, by a Cityscapes-like class.
OOD_HUES = ((270, 335), (172, 190), (18, 40), (350, 370))

COCO_CATEGORIES = (
    (1, "person", "person"), (2, "bicycle", "vehicle"), (3, "car", "vehicle"), (4, "motorcycle", "vehicle"),
    (6, "bus", "vehicle"), (8, "truck", "vehicle"), (10, "traffic light", "outdoor"),
    (13, "stop sign", "outdoor"), (16, "bird", "animal"), (17, "cat", "animal"), (18, "dog", "animal"),
    (28, "umbrella", "accessory"), (34, "frisbee", "sports"), (37, "sports ball", "sports"),
    (38, "kite", "sports"), (44, "bottle", "kitchen"), (47, "cup", "kitchen"), (52, "banana", "food"),
    (62, "chair", "furniture"), (64, "potted plant", "furniture"), (85, "clock", "indoor"),
    (86, "vase", "indoor"), (88, "teddy bear", "indoor"),
)
COCO_EXCLUDED = {1, 2, 3, 4, 6, 8, 10, 13}
COCO_SIDE = (480, 521)
COCO_SMALL_SIDE = (320, 471)
# COCO-like objects per 100 x 100 pixels, and their radii (px, log-uniform): about the sizes of
# the LostAndFound-like obstacles (3..16 px) and of the objects pasted into Fishyscapes (8..19 px).
COCO_OBJECT_DENSITY = 1.2
COCO_OBJECT_RADIUS = (3.0, 36.0)
SEED_FILE = "demo_seed.txt"
FISHYSCAPES_LAYOUTS = ("preconverted", "official")
STREAMS = {"cityscapes_train": 1, "cityscapes_val": 2, "coco": 3, "lost_and_found": 4,
           "fishyscapes_Static": 5, "fishyscapes_LostAndFound": 6, "coco_ids": 7, "road_anomaly21": 8,
           "road_obstacle21": 9, "lost_and_found_testnoknown": 10}
# SegmentMeIfYouCan-shaped sets (--smiyc). RoadAnomaly21: 3 validation and 3 test frames.
ANOMALY_FRAMES = ("validation0000", "validation0001", "validation0002", "airplane0000", "animals0001", "boat0002")
# (rows, columns) added to the scene size, frame by frame in turn: RoadAnomaly21 frames differ in size.
ANOMALY_SIZE_STEPS = ((0, 0), (5, -13), (-7, 9))
# RoadObstacle21: validation_19 and validation_23 are excluded from the validation split; snowstorm1 and
# driveway are extra scenes, in neither split; 3 validation and 3 test frames remain.
OBSTACLE_FRAMES = ("validation_1", "validation_2", "validation_19", "validation_23", "validation_30", "curvy-street_1",
                   "darkasphalt_2", "darkasphalt2_3", "snowstorm1_1", "driveway_1")
OBSTACLE_SIZE_STEPS = ((0, 0), (3, 5))
# LostAndFound-testNoKnown: 19 test frames (city, sequence, frame). Sorted by frame id, index 17 is
# 10_Schlossberg_9_000005_000210 (excluded as an empty-label index); the frames of
# 15_Rechbergstr_Deckenpfronn, 01_Hanns_Klemm_Str_45_000006/7 and 10_Schlossberg_9_000004 are excluded by
# name: 14 remain.
NO_KNOWN_FRAMES = (
    ("01_Hanns_Klemm_Str_45", 5, 100), ("01_Hanns_Klemm_Str_45", 6, 110), ("01_Hanns_Klemm_Str_45", 7, 120),
    ("01_Hanns_Klemm_Str_45", 8, 130), *(("02_Hanns_Klemm_Str_44", 0, 30 + 10 * k) for k in range(5)),
    *(("04_Maurener_Weg_8", 1, 40 + 10 * k) for k in range(4)), *(("07_Festplatz_Flugfeld", 2, 50 + 10 * k) for k in range(3)),
    ("10_Schlossberg_9", 4, 200), ("10_Schlossberg_9", 5, 210), ("15_Rechbergstr_Deckenpfronn", 0, 300))
IMAGE_FORMATS = {".jpg": ("JPEG", {"quality": 95}), ".webp": ("WEBP", {"quality": 90}),
                 ".png": ("PNG", {"compress_level": 1})}


def item_rng(seed: int, stream: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, STREAMS[stream], index])


# ---------------------------------------------------------------- textures

def smooth_noise(rng, shape, cell) -> np.ndarray:
    """Roughly unit-variance noise that varies over `cell` pixels."""
    h, w = shape
    cell = max(1, int(round(cell)))
    grid = rng.standard_normal((h // cell + 2, w // cell + 2)).astype(np.float32)
    big = Image.fromarray(grid, mode="F").resize((grid.shape[1] * cell, grid.shape[0] * cell),
                                                 Image.Resampling.BILINEAR)
    return np.asarray(big)[:h, :w]


def surface(rng, label_id):
    """The texture of a Cityscapes-like class with this instance's colour and brightness:
    a function of a patch shape returning (h,w,3) floats."""
    style = STYLE[label_id]
    colour = (np.asarray(style.colour) + rng.normal(0, style.jitter, 3)) * rng.uniform(0.85, 1.15)
    return textured(rng, colour, style.grain, style.blotch, style.cell)


def textured(rng, colour, grain, blotch, cell):
    """A texture function: `colour` with blotches of about `cell` pixels and pixel grain."""
    def texture(shape):
        shade = blotch * smooth_noise(rng, shape, cell) + grain * rng.standard_normal(shape, dtype=np.float32)
        return np.asarray(colour, np.float32) + shade[..., None]
    return texture


def fill(image, mask, paint) -> None:
    """Paints `mask` with a colour or a texture function, evaluated on the mask's bounding box only."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return
    box = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
    inside, patch = mask[box], image[box]
    patch[inside] = paint(inside.shape)[inside] if callable(paint) else paint


def hsv_colour(hue, saturation, value) -> np.ndarray:
    """RGB 0..255 of a hue in degrees, saturation and value in [0, 1]."""
    h = (hue % 360) / 60.0
    c = value * saturation
    x = c * (1 - abs(h % 2 - 1))
    rgb = [(c, x, 0), (x, c, 0), (0, c, x), (0, x, c), (x, 0, c), (c, 0, x)][int(h) % 6]
    return (np.asarray(rgb) + value - c) * 255.0


def unfamiliar_colour(rng) -> np.ndarray:
    low, high = OOD_HUES[rng.integers(len(OOD_HUES))]
    return hsv_colour(rng.uniform(low, high), rng.uniform(0.65, 1.0), rng.uniform(0.55, 1.0))


def unfamiliar_texture(rng, shape) -> np.ndarray:
    """(H,W,3) float: two OoD-family colours in one of seven patterns, lightly shaded."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(7)
    if kind == 0:  # stripes
        angle, period = rng.uniform(0, np.pi), rng.uniform(3, 9)
        pattern = (np.cos(angle) * xx + np.sin(angle) * yy) / period % 1 < 0.5
    elif kind == 1:  # checks
        cell = rng.integers(2, 7)
        pattern = (xx // cell + yy // cell) % 2 == 0
    elif kind == 2:  # dots
        cell = rng.uniform(4, 9)
        pattern = (xx % cell - cell / 2) ** 2 + (yy % cell - cell / 2) ** 2 < (0.3 * cell) ** 2
    elif kind == 3:  # rings
        period = rng.uniform(3, 8)
        pattern = np.hypot(yy - rng.uniform(0, h), xx - rng.uniform(0, w)) / period % 1 < 0.5
    elif kind == 4:  # speckles
        pattern = rng.random(shape) < 0.5
    elif kind == 5:  # blotches
        pattern = smooth_noise(rng, shape, rng.uniform(3, 8)) > 0
    else:  # plain
        pattern = np.ones(shape, dtype=bool)
    image = np.where(pattern[..., None], unfamiliar_colour(rng), unfamiliar_colour(rng)).astype(np.float32)
    gradient = 1 + 0.15 * (np.cos(rng.uniform(0, 2 * np.pi)) * xx / w + np.sin(rng.uniform(0, 2 * np.pi)) * yy / h)
    return image * gradient[..., None] + 3 * rng.standard_normal(shape, dtype=np.float32)[..., None]


# ---------------------------------------------------------------- shapes

def polygon_mask(shape, points) -> np.ndarray:
    im = Image.new("1", (shape[1], shape[0]), 0)
    ImageDraw.Draw(im).polygon([(float(x), float(y)) for x, y in points], fill=1)
    return np.array(im)


def ellipse_mask(shape, cy, cx, ry, rx) -> np.ndarray:
    yy, xx = np.ogrid[0:shape[0], 0:shape[1]]
    return ((yy - cy) / max(ry, 0.5)) ** 2 + ((xx - cx) / max(rx, 0.5)) ** 2 <= 1


def rect_mask(shape, top, bottom, left, right) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    top, bottom = int(round(max(top, 0))), int(round(min(bottom, shape[0])))
    left, right = int(round(max(left, 0))), int(round(min(right, shape[1])))
    mask[top:bottom, left:right] = True
    return mask


def unfamiliar_polygon(rng, cy, cx, radius) -> list:
    """(x, y) vertices: a random star-shaped polygon, a star, an ellipse or a rotated rectangle."""
    kind = rng.integers(4)
    turn = rng.uniform(0, 2 * np.pi)
    if kind == 0:
        n = rng.integers(5, 13)
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radii = radius * rng.uniform(0.5, 1.0, n)
    elif kind == 1:
        n = 2 * rng.integers(4, 8)
        angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
        radii = radius * np.where(np.arange(n) % 2 == 0, 1.0, rng.uniform(0.35, 0.6))
    elif kind == 2:
        angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        squash = rng.uniform(0.4, 1.0)
        radii = radius / np.sqrt(np.cos(angles) ** 2 + (np.sin(angles) / squash) ** 2)
    else:
        corner = np.arctan(rng.uniform(0.3, 1.0))
        angles = np.array([corner, np.pi - corner, np.pi + corner, 2 * np.pi - corner])
        radii = np.full(4, radius)
    return [(round(cx + r * np.cos(a + turn), 2), round(cy + r * np.sin(a + turn), 2))
            for a, r in zip(angles, radii)]


def unfamiliar_region(rng, shape, cy, cx, radius) -> np.ndarray:
    """A mask no simple polygon describes: a noisy blob or a ring (with a hole)."""
    yy, xx = np.ogrid[0:shape[0], 0:shape[1]]
    dist = np.hypot((yy - cy) / radius, (xx - cx) / (radius * rng.uniform(0.6, 1.0)))
    if rng.random() < 0.5:
        return dist + 0.25 * smooth_noise(rng, shape, max(2.0, radius / 3)) < 0.9
    return (dist < 1) & (dist > rng.uniform(0.35, 0.6))


def unfamiliar_mask(rng, shape, cy, cx, radius) -> np.ndarray:
    if rng.random() < 0.6:
        return polygon_mask(shape, unfamiliar_polygon(rng, cy, cx, radius))
    return unfamiliar_region(rng, shape, cy, cx, radius)


# ---------------------------------------------------------------- street scenes

class Canvas:
    """An image and its Cityscapes label ids, painted back to front."""

    def __init__(self, shape):
        self.shape = shape
        self.image = np.zeros((*shape, 3), dtype=np.float32)
        self.ids = np.zeros(shape, dtype=np.uint8)

    def paint(self, mask, label_id, paint) -> None:
        fill(self.image, mask, paint)
        self.ids[mask] = label_id

    def paint_class(self, rng, mask, label_id) -> None:
        self.paint(mask, label_id, surface(rng, label_id))


class Ground:
    """Perspective: ground lines meet at the vanishing point (vx, horizon)."""

    def __init__(self, rng, shape):
        self.h, self.w = shape
        self.horizon = self.h * rng.uniform(0.36, 0.48)
        self.vx = self.w * rng.uniform(0.4, 0.6)

    def scale(self, y) -> float:
        """Size of things standing at row y relative to those at the bottom row."""
        return (y - self.horizon) / (self.h - self.horizon)

    def wedge(self, shape, left, right) -> np.ndarray:
        """Ground between the lines to (left, bottom) and (right, bottom)."""
        return polygon_mask(shape, [(self.vx, self.horizon), (right, self.h + 1), (left, self.h + 1)])

    def random_row(self, rng, low, high) -> float:
        return self.horizon + (self.h - self.horizon) * rng.uniform(low, high)


def paint_sky(c: Canvas, rng, ground: Ground) -> None:
    sky = surface(rng, SKY)
    # Hazier towards the horizon.
    lighten = np.clip(np.arange(c.shape[0]) / max(ground.horizon, 1), 0, 1)[:, None, None] * 40
    c.paint(np.ones(c.shape, dtype=bool), SKY, lambda shape: sky(shape) + lighten * np.array([1.0, 0.6, 0.2]))


def paint_buildings(c: Canvas, rng, ground: Ground) -> None:
    """A skyline of facades with window grids, taller towards the image sides."""
    h, w = c.shape
    x = 0.0
    while x < w:
        width = w * rng.uniform(0.06, 0.2)
        if rng.random() < 0.85:
            near = 1 + 2 * abs(x + width / 2 - ground.vx) / w
            top = ground.horizon - h * rng.uniform(0.05, 0.22) * near
            facade = rect_mask(c.shape, top, h, x, x + width)
            c.paint_class(rng, facade, BUILDING)
            paint_windows(c, rng, facade, top, x)
        x += width


def paint_windows(c: Canvas, rng, facade, top, left) -> None:
    h = c.shape[0]
    step = max(3, h / 24) * rng.uniform(0.8, 1.3)
    yy, xx = np.ogrid[0:h, 0:c.shape[1]]
    windows = facade & ((yy - top) % step > 0.5 * step) & ((xx - left) % step > 0.5 * step)
    c.paint(windows, BUILDING, np.asarray((55, 62, 75)) + rng.normal(0, 8, 3))


def paint_trees(c: Canvas, rng, ground: Ground) -> None:
    h, w = c.shape
    for _ in range(rng.integers(1, 5)):
        foot = ground.random_row(rng, 0.05, 0.5)
        s = ground.scale(foot)
        side = rng.choice([-1, 1])
        x = ground.vx + side * w * rng.uniform(0.25, 0.6) * (0.4 + s)
        radius = h * rng.uniform(0.08, 0.16) * (0.5 + s)
        crown = np.zeros(c.shape, dtype=bool)
        for _ in range(rng.integers(2, 5)):
            crown |= ellipse_mask(c.shape, foot - 1.6 * radius + rng.normal(0, radius / 3),
                                  x + rng.normal(0, radius / 2), radius * rng.uniform(0.6, 1.0), radius)
        trunk = rect_mask(c.shape, foot - 1.2 * radius, foot, x - max(1, radius / 6), x + max(1, radius / 6))
        c.paint(trunk, VEGETATION, np.asarray((85, 65, 50)) + rng.normal(0, 6, 3))
        c.paint_class(rng, crown, VEGETATION)


def paint_ground(c: Canvas, rng, ground: Ground) -> np.ndarray:
    """Terrain, sidewalks and road with lane marks; returns the road mask."""
    w = c.shape[1]
    road_left, road_right = w * rng.uniform(-0.15, 0.2), w * rng.uniform(0.8, 1.15)
    walk_left, walk_right = road_left - w * rng.uniform(0.1, 0.3), road_right + w * rng.uniform(0.1, 0.3)
    verge_left = walk_left - w * rng.uniform(0.1, 0.4) if rng.random() < 0.6 else walk_left
    verge_right = walk_right + w * rng.uniform(0.1, 0.4) if rng.random() < 0.6 else walk_right
    paint_roadside(c, rng, ground, verge_left if rng.random() < 0.5 else verge_right)
    c.paint_class(rng, ground.wedge(c.shape, verge_left, verge_right), TERRAIN)
    walk = ground.wedge(c.shape, walk_left, walk_right)
    yy, xx = np.ogrid[0:c.shape[0], 0:w]
    tiles = walk & ((yy % 5 == 0) | (xx % 7 == 0))
    c.paint_class(rng, walk, SIDEWALK)
    c.image[tiles] *= 0.85
    road = ground.wedge(c.shape, road_left, road_right)
    c.paint_class(rng, road, ROAD)
    centre = (road_left + road_right) / 2 + rng.normal(0, w * 0.03)
    dashes = ground.wedge(c.shape, centre - w * 0.012, centre + w * 0.012)
    dashes &= (np.log(np.maximum(yy - ground.horizon, 1)) * 4 % 1) < 0.5
    c.paint(dashes, ROAD, np.asarray((215, 215, 210)) + rng.normal(0, 5, 3))
    return road


def paint_roadside(c: Canvas, rng, ground: Ground, bottom_x) -> None:
    """A wall or a fence along the outer ground line on one side."""
    h, w = c.shape
    rise = h * rng.uniform(0.08, 0.2)
    band = polygon_mask(c.shape, [(ground.vx, ground.horizon), (bottom_x, h), (bottom_x, h - rise),
                                  (ground.vx, ground.horizon - 1)])
    if rng.random() < 0.5:
        c.paint_class(rng, band, WALL)
        yy = np.arange(h)[:, None]
        mortar = band & (yy % 4 == 0)
        c.image[mortar] *= 0.9
    else:
        yy, xx = np.ogrid[0:h, 0:w]
        c.paint_class(rng, band & ((xx % 6 < 3) | (yy % 7 == 0)), FENCE)  # posts and rails


def standing_place(rng, ground: Ground, allowed: np.ndarray, low, high):
    """(row, column) of a random foot point in `allowed`, on a random row between the fractions
    low and high of the ground; None when that row has no allowed pixel."""
    foot = ground.random_row(rng, low, high)
    columns = np.flatnonzero(allowed[int(foot)])
    return (foot, columns[rng.integers(columns.size)]) if columns.size else None


def paint_pole(c: Canvas, rng, ground: Ground, road: np.ndarray) -> None:
    """A pole on a sidewalk, with a traffic sign or a traffic light on top."""
    place = standing_place(rng, ground, (c.ids == SIDEWALK) & ~road, 0.2, 0.9)
    if place is None:
        return
    foot, x = place
    s = ground.scale(foot)
    height = (c.shape[0] - ground.horizon) * rng.uniform(1.0, 1.6) * s
    half = max(1.0, 1.8 * s)
    c.paint_class(rng, rect_mask(c.shape, foot - height, foot, x - half, x + half + 1), POLE)
    size = max(3.0, 8 * s)
    top = foot - height
    if rng.random() < 0.5:
        plate = ellipse_mask(c.shape, top, x, size, size) if rng.random() < 0.5 else \
            rect_mask(c.shape, top - size, top + size, x - size, x + size)
        c.paint_class(rng, plate, SIGN)
        mark = plate & rect_mask(c.shape, top - size / 4, top + size / 4, x - size / 2, x + size / 2)
        c.paint(mark, SIGN, (230, 230, 235))
    else:
        box = rect_mask(c.shape, top - 2.5 * size, top, x - size / 2, x + size / 2 + 1)
        c.paint_class(rng, box, LIGHT)
        lamp = box & ellipse_mask(c.shape, top - size * rng.choice([0.5, 1.25, 2.0]), x, size / 3, size / 3)
        c.paint(lamp, LIGHT, (220, 220, 150))


def paint_car(c: Canvas, rng, ground: Ground, road: np.ndarray) -> None:
    place = standing_place(rng, ground, road, 0.1, 0.85)
    if place is None:
        return
    foot, x = place
    height = (c.shape[0] - ground.horizon) * 0.45 * ground.scale(foot)
    half = 0.85 * height
    colour = np.asarray(CAR_COLOURS[rng.integers(len(CAR_COLOURS))]) + rng.normal(0, 6, 3)
    body = rect_mask(c.shape, foot - 0.6 * height, foot - 0.12 * height, x - half, x + half)
    cabin = polygon_mask(c.shape, [(x - 0.8 * half, foot - 0.6 * height), (x + 0.8 * half, foot - 0.6 * height),
                                   (x + 0.55 * half, foot - height), (x - 0.55 * half, foot - height)])
    windows = polygon_mask(c.shape, [(x - 0.7 * half, foot - 0.64 * height), (x + 0.7 * half, foot - 0.64 * height),
                                     (x + 0.5 * half, foot - 0.92 * height), (x - 0.5 * half, foot - 0.92 * height)])
    windows &= ~rect_mask(c.shape, 0, c.shape[0], x - 0.05 * half, x + 0.05 * half)
    c.paint(body | cabin, CAR, textured(rng, colour, 3, 4, 8))
    c.paint(windows, CAR, np.asarray((50, 60, 72)) + rng.normal(0, 5, 3))
    for wheel_x in (x - 0.6 * half, x + 0.6 * half):
        c.paint(ellipse_mask(c.shape, foot - 0.14 * height, wheel_x, 0.14 * height, 0.18 * height), CAR, (20, 20, 22))


def paint_person(c: Canvas, rng, ground: Ground, road: np.ndarray) -> None:
    place = standing_place(rng, ground, (c.ids == SIDEWALK) & ~road, 0.15, 0.9)
    if place is None:
        return
    foot, x = place
    height = (c.shape[0] - ground.horizon) * 0.75 * ground.scale(foot)
    half = max(0.75, 0.13 * height)
    clothes = np.asarray(CLOTHING[rng.integers(len(CLOTHING))]) + rng.normal(0, 8, 3)
    c.paint(rect_mask(c.shape, foot - 0.48 * height, foot, x - half, x + half), PERSON, (45, 45, 55))
    c.paint(rect_mask(c.shape, foot - 0.85 * height, foot - 0.45 * height, x - 1.3 * half, x + 1.3 * half),
            PERSON, textured(rng, clothes, 3, 3, 4))
    c.paint(ellipse_mask(c.shape, foot - 0.92 * height, x, 0.08 * height, 0.7 * half), PERSON,
            np.asarray(SKIN) + rng.normal(0, 12, 3))


def street_scene(rng, shape, traffic: bool = True) -> tuple:
    """(float image (H,W,3), uint8 Cityscapes label ids, road mask, ego-vehicle mask)."""
    c = Canvas(shape)
    ground = Ground(rng, shape)
    paint_sky(c, rng, ground)
    paint_buildings(c, rng, ground)
    paint_trees(c, rng, ground)
    road = paint_ground(c, rng, ground)
    for _ in range(rng.integers(2, 5)):
        paint_pole(c, rng, ground, road)
    if traffic:
        for _ in range(rng.integers(0, 4)):
            paint_car(c, rng, ground, road)
    for _ in range(rng.integers(0, 4) if traffic else rng.integers(0, 2)):
        paint_person(c, rng, ground, road)
    ego = rect_mask(shape, shape[0] - max(2, round(0.06 * shape[0])), shape[0], 0, shape[1])
    c.paint_class(rng, ego, EGO)
    # Exposure and colour cast of the whole picture.
    c.image = c.image * rng.uniform(0.85, 1.15) + rng.normal(0, 4, 3)
    return c.image, c.ids, road & ~ego, ego


def paste_objects(rng, image, shape, places) -> list:
    """Paints an OoD-family object at each (centre row, centre column, radius); returns the masks."""
    masks = []
    for cy, cx, radius in places:
        mask = unfamiliar_mask(rng, shape, cy, cx, radius)
        fill(image, mask, lambda patch: unfamiliar_texture(rng, patch))
        masks.append(mask)
    return masks


def to_uint8(image) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- writing files

def write_image(path, array) -> None:
    """PNG (fast compression), JPEG of quality 95 or WebP of quality 90, by the path's suffix."""
    image_format, options = IMAGE_FORMATS[Path(path).suffix]
    with atomic_path(str(path)) as tmp:
        Image.fromarray(array).save(tmp, format=image_format, **options)


def make_cityscapes(root, counts: dict, shape, seed: int) -> None:
    for split, count in counts.items():
        cities = CITYSCAPES_CITIES[split]
        for i in range(count):
            city = cities[i % len(cities)]
            name = f"{city}_{i // len(cities):06d}_000019"
            image, ids, _, _ = street_scene(item_rng(seed, f"cityscapes_{split}", i), shape)
            write_image(Path(root, "leftImg8bit", split, city, f"{name}_leftImg8bit.png"), to_uint8(image))
            labels = Path(root, "gtFine", split, city)
            write_image(labels / f"{name}_gtFine_labelIds.png", ids)
            write_image(labels / f"{name}_gtFine_labelTrainIds.png", LABEL_TO_TRAIN_ID[ids])


def obstacle_places(rng, road, ground_rows, count) -> list:
    """(centre row, column, radius) of objects standing on the road, sized by perspective."""
    places = []
    rows = np.flatnonzero(road.any(axis=1))
    top, bottom = rows[0], rows[-1]
    for _ in range(count):
        foot = top + (bottom - top) * rng.uniform(0.3, 0.95)
        columns = np.flatnonzero(road[int(foot)])
        s = (foot - top) / max(bottom - top, 1)
        radius = max(3.0, ground_rows * rng.uniform(0.08, 0.18) * (0.3 + s))
        places.append((foot - radius, columns[rng.integers(columns.size)], radius))
    return places


def lost_and_found_scene(rng, shape) -> tuple:
    """(uint8 image, uint8 LostAndFound label ids): road 1 (the region of interest), 0 elsewhere,
    1..3 OoD obstacles on the road with object ids, sometimes a non-hazard patch."""
    image, _, road, _ = street_scene(rng, shape, traffic=False)
    labels = np.where(road, 1, 0).astype(np.uint8)
    ground_rows = shape[0] - np.flatnonzero(road.any(axis=1))[0]
    if rng.random() < 0.5:
        (cy, cx, radius), = obstacle_places(rng, road, ground_rows, 1)
        patch = ellipse_mask(shape, cy + radius * 0.7, cx, radius * 0.35, radius * 1.2) & road
        fill(image, patch, surface(rng, TERRAIN))
        labels[patch] = rng.choice(LAF_NON_HAZARD_IDS)
    places = obstacle_places(rng, road, ground_rows, rng.integers(1, 4))
    for mask in paste_objects(rng, image, shape, places):
        labels[mask] = rng.choice(LAF_OBJECT_IDS)
    return to_uint8(image), labels


def lost_and_found_name(i: int, frame: int) -> str:
    """<city>_<seq>_<frame> of the i-th LostAndFound-like scene."""
    return f"{LAF_CITIES[i % len(LAF_CITIES)]}_{i // len(LAF_CITIES):06d}_{frame:06d}"


def write_lost_and_found_frame(root, split: str, name: str, image, labels) -> None:
    city = name.rsplit("_", 2)[0]
    write_image(Path(root, "leftImg8bit", split, city, f"{name}_leftImg8bit.png"), image)
    write_image(Path(root, "gtCoarse", split, city, f"{name}_gtCoarse_labelIds.png"), labels)


def make_lost_and_found(root, count: int, shape, seed: int) -> None:
    for i in range(count):
        image, labels = lost_and_found_scene(item_rng(seed, "lost_and_found", i), shape)
        write_lost_and_found_frame(root, "test", lost_and_found_name(i, 10 * i), image, labels)


def pasted_ood_objects(rng, image) -> np.ndarray:
    """Paints 1..3 OoD objects into the float scene `image`; returns the mask of their pixels."""
    h, w = image.shape[:2]
    places = [(rng.uniform(0.3, 0.85) * h, rng.uniform(0.1, 0.9) * w, h * rng.uniform(0.06, 0.15))
              for _ in range(rng.integers(1, 4))]
    objects = np.zeros((h, w), dtype=bool)
    for mask in paste_objects(rng, image, (h, w), places):
        objects |= mask
    return objects


def fishyscapes_static_labels(objects, ego) -> np.ndarray:
    """0 in, 1 OoD, 255 void (ego vehicle strip and image border)."""
    labels = objects.astype(np.uint8)
    border = max(1, labels.shape[0] // 64)
    labels[ego] = 255
    labels[:border], labels[-border:], labels[:, :border], labels[:, -border:] = 255, 255, 255, 255
    return labels


def fishyscapes_static_scene(rng, shape) -> tuple:
    """A Cityscapes-like scene with 1..3 pasted OoD objects, and its Fishyscapes labels."""
    image, _, _, ego = street_scene(rng, shape)
    objects = pasted_ood_objects(rng, image)
    return to_uint8(image), fishyscapes_static_labels(objects, ego)


def fishyscapes_laf_labels(laf) -> np.ndarray:
    """Fishyscapes labels of LostAndFound label ids: road 0, obstacles 1, everything else 255."""
    labels = np.full(laf.shape, 255, dtype=np.uint8)
    labels[laf == 1] = 0
    labels[np.isin(laf, LAF_OBJECT_IDS)] = 1
    return labels


def fishyscapes_laf_scene(rng, shape) -> tuple:
    """A LostAndFound-like scene with Fishyscapes labels."""
    image, laf = lost_and_found_scene(rng, shape)
    return image, fishyscapes_laf_labels(laf)


def make_fishyscapes(root, count: int, shape, seed: int) -> None:
    """The pre-converted layout: <split>/<fs id>.png labels beside <fs id>.jpg images."""
    for split, scene in (("Static", fishyscapes_static_scene), ("LostAndFound", fishyscapes_laf_scene)):
        for i in range(count):
            image, labels = scene(item_rng(seed, f"fishyscapes_{split}", i), shape)
            write_image(Path(root, split, f"{i:04d}.jpg"), image)
            write_image(Path(root, split, f"{i:04d}.png"), labels)


def make_fishyscapes_static(root, cityscapes_root, count: int, seed: int) -> None:
    """fs_val_v3.zip's layout: OoD objects pasted into the first `count` Cityscapes val scenes,
    Static/<fs id>_<frame id>_labels.png, and the overlay Static/<fs id>_<frame id>_rgb.npz: the
    painted scene minus the val image, before clipping, so that a reader has to clip."""
    scenes = sorted(Path(cityscapes_root, "leftImg8bit", "val").glob("*/*_leftImg8bit.png"))[:count]
    for i, scene in enumerate(scenes):
        frame = scene.name[:-len("_leftImg8bit.png")]
        base = np.array(Image.open(scene))
        ids = np.array(Image.open(Path(cityscapes_root, "gtFine", "val", scene.parent.name,
                                       f"{frame}_gtFine_labelIds.png")))
        painted = base.astype(np.float32)
        objects = pasted_ood_objects(item_rng(seed, "fishyscapes_Static", i), painted)
        name = Path(root, "Static", f"{i:04d}_{frame}")
        write_image(f"{name}_labels.png", fishyscapes_static_labels(objects, ids == EGO))
        with atomic_path(f"{name}_rgb.npz") as tmp:
            np.savez_compressed(tmp, rgb=np.round(painted).astype(np.int16) - base)


def make_fishyscapes_lostandfound(root, lostandfound_root, count: int, shape, seed: int) -> None:
    """fishyscapes_lostandfound.zip's layout, LostAndFound/<fs id>_<frame id>_labels.png, of
    LostAndFound-like scenes written as LostAndFound frames too: of the train split for even fs ids,
    of the test split for odd ones, as real ones come from either."""
    for i in range(count):
        image, laf = lost_and_found_scene(item_rng(seed, "fishyscapes_LostAndFound", i), shape)
        # Frame numbers 10 k + 5: never the name of one of make_lost_and_found's test frames (10 k).
        name = lost_and_found_name(i, 10 * i + 5)
        write_lost_and_found_frame(lostandfound_root, ("train", "test")[i % 2], name, image, laf)
        write_image(Path(root, "LostAndFound", f"{i:04d}_{name}_labels.png"), fishyscapes_laf_labels(laf))


# ---------------------------------------------------------------- SegmentMeIfYouCan

def shifted(shape, steps, i: int) -> tuple:
    """`shape` plus the i-th of the (rows, columns) `steps`, taken in turn."""
    rows, columns = steps[i % len(steps)]
    return shape[0] + rows, shape[1] + columns


def write_track_frame(root, archive: str, fid: str, suffix: str, image, labels) -> None:
    """<archive>/images/<fid><suffix>, and <archive>/labels_masks/<fid>_labels_semantic.png unless the
    labels are withheld (None)."""
    write_image(Path(root, archive, "images", fid + suffix), image)
    if labels is not None:
        write_image(Path(root, archive, "labels_masks", f"{fid}_labels_semantic.png"), labels)


def make_road_anomaly21(root, shape, seed: int) -> None:
    """dataset_AnomalyTrack: street scenes with 1..3 pasted OoD objects, labelled as Fishyscapes Static's
    (0, 1, 255 on the ego vehicle and the border); the labels of the test frames are withheld."""
    for i, fid in enumerate(ANOMALY_FRAMES):
        image, labels = fishyscapes_static_scene(item_rng(seed, "road_anomaly21", i),
                                                 shifted(shape, ANOMALY_SIZE_STEPS, i))
        write_track_frame(root, "dataset_AnomalyTrack", fid, ".jpg", image,
                          labels if fid.startswith("validation") else None)


def make_road_obstacle21(root, shape, seed: int) -> None:
    """dataset_ObstacleTrack: LostAndFound-like scenes, road 0, obstacles 1, everything else 255; labels
    of the validation scene only."""
    for i, fid in enumerate(OBSTACLE_FRAMES):
        image, labels = fishyscapes_laf_scene(item_rng(seed, "road_obstacle21", i),
                                              shifted(shape, OBSTACLE_SIZE_STEPS, i))
        write_track_frame(root, "dataset_ObstacleTrack", fid, ".webp", image,
                          labels if fid.startswith("validation_") else None)


def make_lost_and_found_testnoknown(root, shape, seed: int) -> None:
    """A LostAndFound test split of the NO_KNOWN_FRAMES, LostAndFound-like scenes with their label ids."""
    for i, (city, sequence, frame) in enumerate(NO_KNOWN_FRAMES):
        image, labels = lost_and_found_scene(item_rng(seed, "lost_and_found_testnoknown", i), shape)
        write_lost_and_found_frame(root, "test", f"{city}_{sequence:06d}_{frame:06d}", image, labels)


# ---------------------------------------------------------------- COCO

def ground_backdrop(rng, shape) -> np.ndarray:
    """Asphalt seen from close by, painted like the street scenes' road (the same colour and
    texture statistics), with 0..2 repaired patches and 0..3 dashed markings at random angles."""
    h, w = shape
    image = surface(rng, ROAD)(shape)
    for _ in range(rng.integers(0, 3)):
        top, left = rng.uniform(0, h), rng.uniform(0, w)
        patch = rect_mask(shape, top, top + rng.uniform(20, 150), left, left + rng.uniform(20, 150))
        fill(image, patch, surface(rng, ROAD))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(rng.integers(0, 4)):
        angle = rng.uniform(0, np.pi)
        across = np.cos(angle) * xx + np.sin(angle) * yy - rng.uniform(0, max(h, w))
        along = np.cos(angle) * yy - np.sin(angle) * xx
        dashes = (np.abs(across) < rng.uniform(1.5, 3.5)) & (along / rng.uniform(8, 20) % 1 < 0.5)
        image[dashes] = np.asarray((215, 215, 210)) + rng.normal(0, 5, 3)
    return image * rng.uniform(0.85, 1.15) + rng.normal(0, 4, 3)


def uncompressed_rle(mask) -> dict:
    """COCO's crowd format: run lengths in column-major order, starting with a run of zeros."""
    flat = np.asfortranarray(mask).ravel(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    return {"counts": np.diff(np.concatenate([[0], changes])).tolist(), "size": list(mask.shape)}


def decoded(segmentation, shape) -> np.ndarray:
    """The mask pycocotools reads from a segmentation (polygons, RLE or uncompressed RLE)."""
    if isinstance(segmentation, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(segmentation, *shape))
    elif isinstance(segmentation["counts"], list):
        rle = mask_utils.frPyObjects(segmentation, *shape)
    else:
        rle = {"size": segmentation["size"], "counts": segmentation["counts"].encode("ascii")}
    return mask_utils.decode(rle).astype(bool)


def coco_segmentations(rng, shape, crowd: bool) -> list:
    """(segmentation, iscrowd) of about COCO_OBJECT_DENSITY objects per 100 x 100 pixels,
    polygons and RLE alternating, plus a crowd region."""
    h, w = shape
    out = []
    count = int(h * w / 1e4 * COCO_OBJECT_DENSITY * rng.uniform(0.7, 1.3))
    for k in range(count):
        radius = float(np.exp(rng.uniform(*np.log(COCO_OBJECT_RADIUS))))
        cy, cx = rng.uniform(radius, h - radius), rng.uniform(radius, w - radius)
        if k % 2 == 0:
            out.append(([[v for point in unfamiliar_polygon(rng, cy, cx, radius) for v in point]], 0))
        else:
            rle = mask_utils.encode(np.asfortranarray(unfamiliar_region(rng, shape, cy, cx, radius).astype(np.uint8)))
            out.append(({"size": list(shape), "counts": rle["counts"].decode("ascii")}, 0))
    if crowd:
        cy, cx = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * w
        cluster = np.zeros(shape, dtype=bool)
        for _ in range(rng.integers(4, 9)):
            cluster |= ellipse_mask(shape, cy + rng.normal(0, 25), cx + rng.normal(0, 25),
                                    rng.uniform(5, 15), rng.uniform(5, 15))
        out.append((uncompressed_rle(cluster), 1))
    return out


def coco_image_shape(rng, small: bool) -> tuple:
    sides = [int(rng.integers(*COCO_SIDE)), int(rng.integers(*COCO_SIDE))]
    if small:
        sides[rng.integers(2)] = int(rng.integers(*COCO_SMALL_SIDE))
    return tuple(sides)


def coco_has_excluded_class(index: int) -> bool:
    """Whether COCO-like image `index` has an object of an excluded class (person, car, ...)."""
    return index % 4 == 1


def coco_is_small(index: int) -> bool:
    """Whether COCO-like image `index` has a side below 480 px."""
    return index % 5 == 3


def coco_has_crowd(index: int) -> bool:
    """Whether COCO-like image `index` has a crowd region (uncompressed RLE) besides its objects."""
    return index % 3 == 0


def coco_kept_count(count: int) -> int:
    """How many of `count` COCO-like images the preparation filter keeps."""
    return sum(not (coco_has_excluded_class(i) or coco_is_small(i)) for i in range(count))


def make_coco(root, count: int, seed: int, year: str = "2017", split: str = "train") -> None:
    """Images <root>/<split><year>/<id:012d>.jpg (in the order of their ids, which `index` counts)
    and annotations/instances_<split><year>.json."""
    ids = sorted(int(i) + 1 for i in item_rng(seed, "coco_ids", 0).choice(999_999, count, replace=False))
    excluded = [c for c, _, _ in COCO_CATEGORIES if c in COCO_EXCLUDED]
    kept = [c for c, _, _ in COCO_CATEGORIES if c not in COCO_EXCLUDED]
    images, annotations = [], []
    for i, image_id in enumerate(ids):
        rng = item_rng(seed, "coco", i)
        shape = coco_image_shape(rng, small=coco_is_small(i))
        picture = ground_backdrop(rng, shape)
        for k, (segmentation, crowd) in enumerate(coco_segmentations(rng, shape, crowd=coco_has_crowd(i))):
            mask = decoded(segmentation, shape)
            fill(picture, mask, lambda patch: unfamiliar_texture(rng, patch))
            excluded_one = coco_has_excluded_class(i) and k == 0
            category = excluded[rng.integers(len(excluded))] if excluded_one else kept[rng.integers(len(kept))]
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "segmentation": segmentation, "area": int(mask.sum()),
                                "bbox": [float(v) for v in mask_utils.toBbox(rle)], "iscrowd": crowd})
        name = f"{image_id:012d}.jpg"
        write_image(Path(root, f"{split}{year}", name), to_uint8(picture))
        images.append({"id": image_id, "file_name": name, "height": shape[0], "width": shape[1]})
    categories = [{"id": c, "name": n, "supercategory": s} for c, n, s in COCO_CATEGORIES]
    data = {"info": {"description": "Meta-OoD synthetic demo data", "version": "1.0", "year": int(year)},
            "licenses": [], "images": images, "annotations": annotations, "categories": categories}
    with atomic_path(str(Path(root, "annotations", f"instances_{split}{year}.json"))) as tmp, open(tmp, "w") as f:
        json.dump(data, f, separators=(",", ":"))


class DemoDataError(MetaOodError, ValueError):
    """Demo data that cannot be written as asked: a root holding another seed's data, or counts
    that do not fit the layout."""


def stamp_seed(root, seed: int) -> None:
    """Records `seed` in <root>/demo_seed.txt, or raises DemoDataError if another seed is recorded."""
    stamp = Path(root, SEED_FILE)
    if stamp.exists():
        found = stamp.read_text().strip()
        if found != str(seed):
            raise DemoDataError(f"{root} already holds demo data generated with seed {found}, not {seed}: "
                                "give another root or delete this one")
        return
    with atomic_path(str(stamp)) as tmp:
        Path(tmp).write_text(f"{seed}\n")


def demo_roots(root, smiyc: bool = False) -> dict:
    """The root of each data set below `root`, by data set name; with the SegmentMeIfYouCan sets if `smiyc`."""
    root = str(root)
    roots = {"Cityscapes": os.path.join(root, "cityscapes"), "COCO": os.path.join(root, "COCO", "2017"),
             "LostAndFound": os.path.join(root, "lost_and_found"), "Fishyscapes": os.path.join(root, "fishyscapes")}
    if smiyc:
        roots.update({"RoadAnomaly21": os.path.join(root, "segment_me"), "RoadObstacle21": os.path.join(root, "segment_me"),
                      "LostAndFound-testNoKnown": os.path.join(root, "lost_and_found_testnoknown")})
    return roots


def make_demo_data(root, height: int = 128, width: int = 256, n_cityscapes_train: int = 80,
                   n_cityscapes_val: int = 16, n_coco: int = 80, n_lostandfound: int = 16,
                   n_fishyscapes: int = 8, seed: int = 0, fishyscapes_layout: str = "preconverted",
                   smiyc: bool = False) -> dict:
    """Writes the four data sets under `root`, and the SegmentMeIfYouCan ones if `smiyc`; returns their
    roots by data set name. `fishyscapes_layout` "official" writes the Fishyscapes sets as the archives
    hold them."""
    if fishyscapes_layout not in FISHYSCAPES_LAYOUTS:
        raise DemoDataError(f"unknown Fishyscapes layout {fishyscapes_layout!r}: expected one of "
                            f"{', '.join(FISHYSCAPES_LAYOUTS)}")
    if fishyscapes_layout == "official" and n_fishyscapes > n_cityscapes_val:
        raise DemoDataError(f"the official Fishyscapes Static layout overlays Cityscapes val scenes: "
                            f"{n_fishyscapes} frames need as many val scenes, not {n_cityscapes_val}")
    stamp_seed(root, seed)
    roots = demo_roots(root, smiyc)
    shape = (height, width)
    make_cityscapes(roots["Cityscapes"], {"train": n_cityscapes_train, "val": n_cityscapes_val}, shape, seed)
    make_coco(roots["COCO"], n_coco, seed)
    make_lost_and_found(roots["LostAndFound"], n_lostandfound, shape, seed)
    if fishyscapes_layout == "official":
        make_fishyscapes_static(roots["Fishyscapes"], roots["Cityscapes"], n_fishyscapes, seed)
        make_fishyscapes_lostandfound(roots["Fishyscapes"], roots["LostAndFound"], n_fishyscapes, shape, seed)
    else:
        make_fishyscapes(roots["Fishyscapes"], n_fishyscapes, shape, seed)
    if smiyc:
        make_road_anomaly21(roots["RoadAnomaly21"], shape, seed)
        make_road_obstacle21(roots["RoadObstacle21"], shape, seed)
        make_lost_and_found_testnoknown(roots["LostAndFound-testNoKnown"], shape, seed)
    return roots


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="demo/datasets", help="output folder (default: %(default)s)")
    parser.add_argument("--height", type=int, default=128, help="scene height in pixels (default: %(default)s)")
    parser.add_argument("--width", type=int, default=256, help="scene width in pixels (default: %(default)s)")
    parser.add_argument("--n_cityscapes_train", type=int, default=80, help="(default: %(default)s)")
    parser.add_argument("--n_cityscapes_val", type=int, default=16, help="(default: %(default)s)")
    parser.add_argument("--n_coco", type=int, default=80, help="COCO images before filtering (default: %(default)s)")
    parser.add_argument("--n_lostandfound", type=int, default=16, help="(default: %(default)s)")
    parser.add_argument("--n_fishyscapes", type=int, default=8, help="per split (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")
    parser.add_argument("--fishyscapes_layout", choices=FISHYSCAPES_LAYOUTS, default="preconverted",
                        help="preconverted: <fs id>.png labels beside <fs id>.jpg images; official: the "
                             "archives' files (see above) (default: %(default)s)")
    parser.add_argument("--smiyc", action="store_true",
                        help="also the SegmentMeIfYouCan sets RoadAnomaly21, RoadObstacle21, LostAndFound-testNoKnown")
    return parser.parse_args(argv)


def main(argv=None):
    args = vars(parse_args(argv))
    roots = make_demo_data(args.pop("root"), **args)
    for name, path in roots.items():
        logger.info("%s: %s", name, path)


if __name__ == "__main__":
    sys.exit(run_main(main))
