"""The tree-crown benchmark data: NEON aerial RGB photographs of Yellowstone (site YELL) with
every crown boxed by hand, as the deepforest package ships them on PyPI (Weinstein et al.
2019, "Individual tree-crown detection in RGB imagery using semi-supervised deep learning
neural networks", Remote Sensing 11(11); deepforest is MIT-licensed).

    python -m rcnn.bench.trees [--out data/trees]

Two images, split by image:
- train: 2019_YELL_2_528000_4978000_image_crop2 (2299 x 2472 px, 574 crowns);
- test (held out): 2019_YELL_2_541000_4977000_image_crop (1249 x 1035 px, 279 crowns).

Writes two VOC-format folders (images beside their XML, ImageSets/Main/{train,test}.txt,
classes.txt with the one class "Tree"):
- <out>/images: the two whole images;
- <out>/tiles: both cut into 400 x 400 tiles (rcnn.augment.window_grid, no overlap, the last
  row and column flush with the border), each crown cut by a tile clipped when at least half
  of it is inside and dropped otherwise (rcnn.augment's crop rule), tiles without crowns left
  out. How a new user would tile a large image by hand for a detector trained at ~400 px.

The wheel is downloaded once with pip (`pip download --no-deps`) into <out>/download and its
sha256 checked.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

log = logging.getLogger("bench_trees")

WHEEL = "deepforest-2.1.0-py3-none-any.whl"
WHEEL_SHA256 = "8c2798d8e9be7f0004b194fe207b76c1d9fff6e711b3db67b9508dcd5d00ae54"
IMAGES = {"train": "2019_YELL_2_528000_4978000_image_crop2",
          "test": "2019_YELL_2_541000_4977000_image_crop"}
TILE = 400


def download(folder: Path) -> Path:
    """The deepforest wheel in folder (downloaded from PyPI if absent), sha256-checked.
    Raises RuntimeError when pip fails or the file's checksum differs."""
    wheel = folder / WHEEL
    if not wheel.exists():
        folder.mkdir(parents=True, exist_ok=True)
        log.info("downloading %s from PyPI", WHEEL)
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(folder),
               "deepforest==2.1.0"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode or not wheel.exists():
            raise RuntimeError(f"pip download deepforest==2.1.0 failed: "
                               f"{done.stderr.strip().splitlines()[-1:]}")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise RuntimeError(f"{wheel}: sha256 {digest}, expected {WHEEL_SHA256}")
    return wheel


def _voc_xml(name: str, width: int, height: int, boxes: np.ndarray) -> str:
    objects = "".join(
        f"  <object><name>Tree</name><difficult>0</difficult><bndbox><xmin>{b[0]:g}</xmin>"
        f"<ymin>{b[1]:g}</ymin><xmax>{b[2]:g}</xmax><ymax>{b[3]:g}</ymax></bndbox></object>\n"
        for b in np.round(boxes + 1, 2))   # VOC's 1-based pixel numbers
    return (f"<annotation>\n  <filename>{name}.png</filename>\n  <size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>\n{objects}</annotation>\n")


def _write_folder(folder: Path, items: dict[str, list[tuple[str, np.ndarray, np.ndarray]]],
                  ) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (folder / "classes.txt").write_text("Tree\n")
    for split, entries in items.items():
        for name, im, boxes in entries:
            Image.fromarray(im).save(folder / f"{name}.png")
            (folder / f"{name}.xml").write_text(
                _voc_xml(name, im.shape[1], im.shape[0], boxes))
        (folder / "ImageSets" / "Main" / f"{split}.txt").write_text(
            "".join(f"{name}\n" for name, _, _ in entries))


def prepare(out: Path) -> dict[str, Path]:
    """<out>/images and <out>/tiles (see the module docstring), made if absent. Returns
    {"images": ..., "tiles": ...}."""
    from PIL import Image

    from rcnn.augment import augment, window_grid
    from rcnn.datasets.voc import VOCDataset

    folders = {"images": out / "images", "tiles": out / "tiles"}
    if all((f / "ImageSets" / "Main" / "test.txt").exists() for f in folders.values()):
        return folders
    wheel = download(out / "download")
    whole: dict[str, list] = {}
    tiles: dict[str, list] = {}
    with zipfile.ZipFile(wheel) as z:
        for split, name in IMAGES.items():
            with z.open(f"deepforest/data/{name}.png") as f:
                im = np.asarray(Image.open(f).convert("RGB"))
            xml = z.read(f"deepforest/data/{name}.xml").decode()
            raw = out / "download" / f"{name}.xml"
            raw.write_text(xml)
            boxes = _read_boxes(raw, im.shape[1], im.shape[0])
            whole[split] = [(name, im, boxes)]
            h, w = im.shape[:2]
            tiles[split] = []
            for x0, y0, x1, y1 in window_grid(w, h, TILE, 0.0):
                cut = augment(im[:, :, ::-1], boxes, None, [], np.random.default_rng(0), 0.5,
                              (x0, y0, x1, y1))
                if len(cut.boxes):
                    tiles[split].append((f"{name}_x{x0}_y{y0}", cut.im[:, :, ::-1],
                                         cut.boxes))
    _write_folder(folders["images"], whole)
    _write_folder(folders["tiles"], tiles)
    for kind, folder in folders.items():
        for split in IMAGES:
            n = len(VOCDataset(folder, split).gt_roidb())
            log.info("%s %s: %d images", kind, split, n)
    return folders


def _read_boxes(xml: Path, width: int, height: int) -> np.ndarray:
    """(G, 4) float32 boxes of a VOC XML in this project's 0-based inclusive pixel
    coordinates, clipped to the width x height image (as rcnn.datasets.voc reads them)."""
    import xml.etree.ElementTree as ET

    root = ET.parse(xml).getroot()
    boxes = [[float(o.find(f"bndbox/{k}").text) for k in ("xmin", "ymin", "xmax", "ymax")]
             for o in root.iter("object")]
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) - 1
    b[:, 0::2] = np.clip(b[:, 0::2], 0, width - 1)
    b[:, 1::2] = np.clip(b[:, 1::2], 0, height - 1)
    return b


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench_trees", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/trees", type=Path)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(name)s] %(message)s")
    prepare(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
