"""Pictures: detections drawn on images, loss curves, bar charts."""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PALETTE = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
           (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 190), (0, 128, 128)]


def overlay_mask(im: Image.Image, mask: np.ndarray, colour: tuple[int, int, int],
                 alpha: float = 0.45) -> Image.Image:
    """`im` with a binary mask (H, W of im, or smaller by an integer factor: enlarged with
    nearest neighbours) filled translucently in colour, and its outline drawn opaque."""
    m = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255)
    if m.size != im.size:
        if im.width * m.height != im.height * m.width:
            raise ValueError(f"overlay_mask: a {m.width} x {m.height} mask on a {im.width} x "
                             f"{im.height} picture")
        m = m.resize(im.size, Image.NEAREST)
    fill = Image.new("RGB", im.size, colour)
    im = Image.composite(Image.blend(im, fill, alpha), im, m)
    outline = Image.fromarray(np.asarray(m) & ~np.asarray(m.filter(ImageFilter.MinFilter(3))))
    return Image.composite(fill, im, outline)


def draw_detections(image: str | Image.Image, dets: Sequence[tuple[str, np.ndarray]],
                    gt: np.ndarray | None = None, scale: int = 2,
                    masks: Sequence[Sequence[np.ndarray]] | None = None) -> Image.Image:
    """The image (a path, or the RGB picture the detector saw) enlarged `scale` times, ground
    truth in thin white, detections (class, (K, 5)) as coloured boxes labelled with class and
    score; with masks (masks[k][j]: the j-th detection of dets[k], an image-sized 0 / 1
    array), each instance's mask as a translucent fill with an outline in its box's
    colour."""
    im = Image.open(image).convert("RGB") if isinstance(image, str) else image.convert("RGB")
    im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    for k, class_masks in enumerate(masks or []):
        for m in class_masks:
            im = overlay_mask(im, m, PALETTE[k % len(PALETTE)])
    draw = ImageDraw.Draw(im)
    if gt is not None:
        for b in gt:
            draw.rectangle([v * scale for v in b[:4]], outline=(255, 255, 255), width=1)
    for k, (name, boxes) in enumerate(dets):
        colour = PALETTE[k % len(PALETTE)]
        for b in boxes:
            x1, y1, x2, y2 = (float(v) * scale for v in b[:4])
            draw.rectangle([x1, y1, x2, y2], outline=colour, width=2)
            label = f"{name} {b[4]:.2f}"
            tw = draw.textlength(label)
            draw.rectangle([x1, y1 - 11, x1 + tw + 2, y1], fill=colour)
            draw.text((x1 + 1, y1 - 11), label, fill=(255, 255, 255))
    return im


def grid(images: Sequence[Image.Image], cols: int = 3) -> Image.Image:
    """The images in rows of `cols` (fewer for fewer images), each in a cell as large as the
    largest image, on white."""
    w = max(im.width for im in images)
    h = max(im.height for im in images)
    cols = min(cols, len(images))
    rows = (len(images) + cols - 1) // cols
    out = Image.new("RGB", (cols * w, rows * h), (255, 255, 255))
    for i, im in enumerate(images):
        out.paste(im, ((i % cols) * w, (i // cols) * h))
    return out


def plot_loss(loss_log: str | Path, out: str | Path, window: int = 50) -> Path:
    """Each loss of a loss_log.jsonl (and their sum), smoothed over `window` iterations."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(loss_log).read_text().splitlines() if line]
    its = np.array([r["iter"] for r in rows])
    names = [k for k in rows[0] if k != "iter"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    kernel = np.ones(min(window, len(rows))) / min(window, len(rows))
    total = np.zeros(len(rows))
    for name in names:
        v = np.array([r[name] for r in rows])
        total += v
        ax.plot(its[len(kernel) - 1:], np.convolve(v, kernel, "valid"), label=name, lw=1.2)
    ax.plot(its[len(kernel) - 1:], np.convolve(total, kernel, "valid"), label="total",
            color="black", lw=1.8)
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"loss (mean of {len(kernel)} iterations)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8, ncol=3)
    ax.set_title("training loss")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)
