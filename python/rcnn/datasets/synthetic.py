"""A seeded synthetic detection dataset written in PASCAL VOC format, and the same ground truth
as COCO-format JSON files (train.json, test.json beside the VOC folders): small shapes of
several classes (a few to a few tens of pixels) on textured backgrounds, so that localisation
precision matters. Exact instance masks come with it: VOC2012-style SegmentationObject/ and
SegmentationClass/ palette PNGs (each shape drawn by the same PIL call as in the image, on
its own 'L' image), and compressed RLE in the JSON files; circles, triangles and crosses fill
their boxes differently. The images, boxes and random draws are those of the generator
without masks. The "multiscale" preset spreads object sizes over 20x (8 to 160 pixels
on 384 x 384 images, log-uniform: about 45 % under COCO's "small" 32 x 32), for feature
pyramids.

    python -m rcnn.datasets.synthetic OUT_DIR [--train 800 --test 200 --seed 0]
    python -m rcnn.datasets.synthetic data/synthetic_multiscale --preset multiscale
"""
from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image, ImageDraw

from rcnn.datasets.coco import write_coco
from rcnn.datasets.voc import VOCDataset

log = logging.getLogger(__name__)

CLASSES = ("circle", "square", "triangle", "cross")


@dataclass
class SyntheticSpec:
    image_size: int = 256
    min_objects: int = 3
    max_objects: int = 8
    min_size: float = 10.0      # object side in pixels (log-uniform between min and max)
    max_size: float = 44.0
    max_aspect: float = 1.6     # width / height in [1 / max_aspect, max_aspect]
    seed: int = 0


# Named dataset settings (the seed is given separately).
PRESETS: dict[str, SyntheticSpec] = {
    "default": SyntheticSpec(),
    "multiscale": SyntheticSpec(image_size=384, min_objects=4, max_objects=12, min_size=8.0,
                                max_size=160.0),
}


def preset(name: str, seed: int = 0) -> SyntheticSpec:
    """PRESETS[name] with the given seed."""
    if name not in PRESETS:
        raise ValueError(f"unknown synthetic preset {name!r} (one of {', '.join(PRESETS)})")
    return SyntheticSpec(**{**asdict(PRESETS[name]), "seed": seed})


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Low-frequency colour noise, stripes and grain; muted, so shapes stay visible."""
    grid = rng.uniform(70, 180, (5, 5, 3))
    img = np.asarray(Image.fromarray(grid.astype(np.uint8)).resize((size, size),
                                                                   Image.BICUBIC), np.float32)
    yy, xx = np.mgrid[0:size, 0:size]
    angle = rng.uniform(0, np.pi)
    period = rng.uniform(6, 24)
    stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
    img += (rng.uniform(5, 25) * stripes)[..., None]
    img += rng.normal(0, 6, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    """A saturated colour: one channel high, one low, one anywhere."""
    c = [int(rng.uniform(200, 255)), int(rng.uniform(0, 60)), int(rng.uniform(0, 255))]
    return tuple(int(v) for v in rng.permutation(c))


def _draw(draw: ImageDraw.ImageDraw, cls: str, box: tuple[int, int, int, int],
          colour: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = box
    if cls == "circle":
        draw.ellipse(box, fill=colour)
    elif cls == "square":
        draw.rectangle(box, fill=colour)
    elif cls == "triangle":
        draw.polygon([((x1 + x2) / 2, y1), (x2, y2), (x1, y2)], fill=colour)
    else:  # cross
        tw, th = max((x2 - x1 + 1) // 3, 1), max((y2 - y1 + 1) // 3, 1)
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        draw.rectangle((cx - tw // 2, y1, cx - tw // 2 + tw - 1, y2), fill=colour)
        draw.rectangle((x1, cy - th // 2, x2, cy - th // 2 + th - 1), fill=colour)


def voc_palette() -> list[int]:
    """VOC's colour map (index 255, the void border, is (224, 224, 192)), as a PIL palette."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= (c & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def make_image(rng: np.random.Generator, spec: SyntheticSpec,
               masks: list[np.ndarray] | None = None):
    """One image (PIL) and its objects [(class, (x1, y1, x2, y2))], boxes inclusive. With a
    list `masks`, each object's mask (H x W uint8 0 / 1) is appended to it, drawn by the same
    PIL call as the object on a separate 'L' image (no other random draw)."""
    size = spec.image_size
    im = Image.fromarray(_background(rng, size))
    draw = ImageDraw.Draw(im)
    objects: list[tuple[str, tuple[int, int, int, int]]] = []
    n = int(rng.integers(spec.min_objects, spec.max_objects + 1))
    for _ in range(n * 10):
        if len(objects) == n:
            break
        side = np.exp(rng.uniform(np.log(spec.min_size), np.log(spec.max_size)))
        aspect = np.exp(rng.uniform(-np.log(spec.max_aspect), np.log(spec.max_aspect)))
        w = max(int(round(side * np.sqrt(aspect))), 4)
        h = max(int(round(side / np.sqrt(aspect))), 4)
        x1, y1 = int(rng.integers(0, size - w)), int(rng.integers(0, size - h))
        box = (x1, y1, x1 + w - 1, y1 + h - 1)
        # Keep objects apart (a 2-pixel gap), so every box is exactly its shape's extent.
        if any(box[0] <= b[2] + 2 and b[0] <= box[2] + 2 and box[1] <= b[3] + 2
               and b[1] <= box[3] + 2 for _, b in objects):
            continue
        cls = CLASSES[int(rng.integers(len(CLASSES)))]
        _draw(draw, cls, box, _colour(rng))
        objects.append((cls, box))
        if masks is not None:
            mask = Image.new("L", (size, size), 0)
            _draw(ImageDraw.Draw(mask), cls, box, 1)
            masks.append(np.asarray(mask, dtype=np.uint8))
    return im, objects


def _annotation_xml(index: str, size: int, objects) -> str:
    objs = "".join(
        f"  <object>\n    <name>{escape(cls)}</name>\n    <difficult>0</difficult>\n"
        f"    <bndbox><xmin>{b[0] + 1}</xmin><ymin>{b[1] + 1}</ymin>"
        f"<xmax>{b[2] + 1}</xmax><ymax>{b[3] + 1}</ymax></bndbox>\n  </object>\n"
        for cls, b in objects)
    return (f"<annotation>\n  <filename>{index}.jpg</filename>\n  <size><width>{size}</width>"
            f"<height>{size}</height><depth>3</depth></size>\n{objs}</annotation>\n")


def _write_masks(out: Path, index: str, size: int, objects, masks: list[np.ndarray],
                 palette: list[int]) -> None:
    """VOC2012-style palette PNGs: SegmentationObject (object k of the XML has value k, later
    objects over earlier ones, as drawn) and SegmentationClass (class index, 1..K)."""
    instances = np.zeros((size, size), np.uint8)
    classes = np.zeros_like(instances)
    for k, ((cls, _), mask) in enumerate(zip(objects, masks, strict=True), start=1):
        instances[mask > 0] = k
        classes[mask > 0] = CLASSES.index(cls) + 1
    for folder, values in (("SegmentationObject", instances), ("SegmentationClass", classes)):
        png = Image.fromarray(values)
        png.putpalette(palette)          # 'L' -> 'P', the values kept as palette indices
        png.save(out / folder / f"{index}.png")


def generate(out: str | Path, num_train: int = 800, num_test: int = 200,
             spec: SyntheticSpec | None = None) -> Path:
    """Writes the dataset (skipped if a complete one with the same settings is there)."""
    spec = spec or SyntheticSpec()
    out = Path(out)
    stamp = out / "synthetic.json"
    settings = {"num_train": num_train, "num_test": num_test, "classes": CLASSES,
                "coco_json": True, "instance_masks": True, **asdict(spec)}
    if stamp.is_file() and json.loads(stamp.read_text()).get("settings") == json.loads(
            json.dumps(settings)):
        log.info("synthetic data already in %s", out)
        return out
    for sub in ("Annotations", "ImageSets/Main", "ImageSets/Segmentation", "JPEGImages",
                "SegmentationObject", "SegmentationClass"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(spec.seed)
    palette = voc_palette()
    sizes = []
    for split, count in (("train", num_train), ("test", num_test)):
        names = []
        for i in range(count):
            index = f"{split}_{i:05d}"
            masks: list[np.ndarray] = []
            im, objects = make_image(rng, spec, masks)
            im.save(out / "JPEGImages" / f"{index}.jpg", quality=95)
            _write_masks(out, index, spec.image_size, objects, masks, palette)
            (out / "Annotations" / f"{index}.xml").write_text(
                _annotation_xml(index, spec.image_size, objects))
            sizes += [float(np.sqrt((b[2] - b[0] + 1) * (b[3] - b[1] + 1))) for _, b in objects]
            names.append(index)
        for sets in ("Main", "Segmentation"):
            (out / "ImageSets" / sets / f"{split}.txt").write_text("\n".join(names) + "\n")
        log.info("%s: %d images", split, count)
    (out / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    for split in ("train", "test"):
        write_coco(VOCDataset(out, split), out / f"{split}.json")
    q = [float(v) for v in np.percentile(sizes, [0, 10, 50, 90, 100])]
    stats = {"objects": len(sizes), "size_percentiles_0_10_50_90_100": [round(v, 1) for v in q]}
    stamp.write_text(json.dumps({"settings": settings, "stats": stats}, indent=1))
    log.info("object size sqrt(w*h) percentiles 0/10/50/90/100: %s", stats[
        "size_percentiles_0_10_50_90_100"])
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=800)
    ap.add_argument("--test", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--preset", default="default", choices=list(PRESETS),
                    help="default: 256 x 256, objects of 10-44 px; multiscale: 384 x 384, "
                         "objects of 8-160 px")
    ap.add_argument("--image-size", type=int, default=None,
                    help="image side (default: the preset's)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    spec = preset(args.preset, args.seed)
    if args.image_size:
        spec.image_size = args.image_size
    generate(args.out, args.train, args.test, spec)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
