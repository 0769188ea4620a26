"""Image reading: every pixel mode Pillow opens becomes 8-bit BGR by a documented rule or is
refused with one line naming the file (issue 21, part 4); the EXIF orientation warning where
the annotation's size cannot decide."""
from __future__ import annotations

import logging
import struct
import zlib

import numpy as np
import pytest
from PIL import Image
from rcnn.datasets import DatasetError, open_dataset
from rcnn.datasets.images import read_image_bgr, rgb8

# 16-bit values and what OpenCV's IMREAD_COLOR (v >> 8, the high byte) reads from them
SIXTEEN = np.array([[10000, 40000, 65535], [0, 255, 256]])
EIGHT = np.array([[39, 156, 255], [0, 0, 1]])


def write_png16(path, values, colour_type):
    """A 16-bit PNG written by hand (Pillow cannot write 16-bit RGB): colour type 0 grey,
    2 RGB, 4 grey + alpha, 6 RGBA; values (H, W) or (H, W, C)."""
    values = np.asarray(values, dtype=">u2")
    h, w = values.shape[:2]
    raw = b"".join(b"\x00" + values[y].tobytes() for y in range(h))

    def chunk(tag, data):
        return (struct.pack(">I", len(data)) + tag + data
                + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF))

    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path


def grey_bgr(expected):
    return np.repeat(np.asarray(expected, np.uint8)[:, :, None], 3, axis=2)


def test_16_bit_grey_png_divides_by_256(tmp_path):
    """The issue's case: background 10000, object 40000 of 65535 -> 39 and 156 (it read as
    255 everywhere)."""
    path = write_png16(tmp_path / "g16.png", SIXTEEN, 0)
    assert Image.open(path).mode == "I;16"
    np.testing.assert_array_equal(read_image_bgr(path), grey_bgr(EIGHT))
    # Pillow's own I;16 PNG, e.g. a depth-camera frame
    Image.fromarray(SIXTEEN.astype(np.uint16)).save(tmp_path / "pil16.png")
    np.testing.assert_array_equal(read_image_bgr(tmp_path / "pil16.png"), grey_bgr(EIGHT))


@pytest.mark.parametrize("mode", ["I;16", "I;16L", "I;16B", "I;16N"])
def test_16_bit_grey_modes(tmp_path, mode):
    dtype = {"I;16B": ">u2", "I;16L": "<u2"}.get(mode, "=u2")
    im = Image.frombytes(mode, (3, 2), SIXTEEN.astype(dtype).tobytes())
    np.testing.assert_array_equal(np.asarray(im).astype(int), SIXTEEN)   # the input is right
    np.testing.assert_array_equal(rgb8(im), grey_bgr(EIGHT))
    if mode in ("I;16", "I;16B"):      # as files (TIFF keeps the byte order)
        im.save(tmp_path / "x.tif")
        assert Image.open(tmp_path / "x.tif").mode == mode
        np.testing.assert_array_equal(read_image_bgr(tmp_path / "x.tif"), grey_bgr(EIGHT))


def test_16_bit_colour_pngs(tmp_path):
    rgb = np.stack([SIXTEEN, SIXTEEN // 2, 65535 - SIXTEEN], axis=-1)
    expected_rgb = np.stack([EIGHT, (SIXTEEN // 2) >> 8, (65535 - SIXTEEN) >> 8], axis=-1)
    bgr = read_image_bgr(write_png16(tmp_path / "rgb16.png", rgb, 2))
    np.testing.assert_array_equal(bgr, expected_rgb[:, :, ::-1])
    assert bgr[0, 0].tolist() == [216, 19, 39]       # B, G, R of (10000, 5000, 55535)
    # RGBA: the alpha channel is dropped (not composited)
    rgba = np.concatenate([rgb, np.zeros_like(SIXTEEN)[..., None]], axis=-1)
    bgr = read_image_bgr(write_png16(tmp_path / "rgba16.png", rgba, 6))
    np.testing.assert_array_equal(bgr, expected_rgb[:, :, ::-1])
    # grey + alpha
    la = np.stack([SIXTEEN, np.full_like(SIXTEEN, 65535)], axis=-1)
    np.testing.assert_array_equal(read_image_bgr(write_png16(tmp_path / "la16.png", la, 4)),
                                  grey_bgr(EIGHT))


def test_32_bit_integer(tmp_path):
    Image.fromarray(SIXTEEN.astype(np.int32)).save(tmp_path / "i.tif")
    assert Image.open(tmp_path / "i.tif").mode == "I"
    np.testing.assert_array_equal(read_image_bgr(tmp_path / "i.tif"), grey_bgr(EIGHT))
    Image.fromarray(np.array([[-5, 70000]], np.int32)).save(tmp_path / "wide.tif")
    with pytest.raises(DatasetError, match=r"wide\.tif: 32-bit integer pixels \(mode I\) "
                                           r"from -5 to 70000: only values 0-65535"):
        read_image_bgr(tmp_path / "wide.tif")


def test_float(tmp_path):
    values = np.array([[0.0, 0.5, 1.0], [0.1, 0.999, 0.002]], np.float32)
    Image.fromarray(values).save(tmp_path / "f.tif")
    assert Image.open(tmp_path / "f.tif").mode == "F"
    expected = [[0, 128, 255], [26, 255, 1]]          # round(255 v)
    np.testing.assert_array_equal(read_image_bgr(tmp_path / "f.tif"), grey_bgr(expected))
    for name, bad, shown in (("big", 255.0, "0 to 255"), ("nan", np.nan, "with 1 NaN or infinite")):
        Image.fromarray(np.array([[0.0, bad]], np.float32)).save(tmp_path / f"{name}.tif")
        with pytest.raises(DatasetError, match=rf"{name}\.tif: float pixels \(mode F\) "
                                               rf".*{shown}.*only values in \[0, 1\]"):
            read_image_bgr(tmp_path / f"{name}.tif")


def test_one_bit(tmp_path):
    im = Image.new("1", (3, 2), 0)
    im.putpixel((1, 0), 1)
    im.putpixel((2, 1), 1)
    im.save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    np.testing.assert_array_equal(read_image_bgr(tmp_path / "b.png"),
                                  grey_bgr([[0, 255, 0], [0, 0, 255]]))


def test_eight_bit_modes_with_values(tmp_path):
    p = Image.new("P", (2, 1))
    p.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    p.putpixel((1, 0), 1)
    p.save(tmp_path / "p.png")
    assert read_image_bgr(tmp_path / "p.png")[0].tolist() == [[0, 0, 0], [30, 20, 10]]
    Image.new("RGBA", (1, 1), (10, 20, 30, 0)).save(tmp_path / "a.png")
    assert read_image_bgr(tmp_path / "a.png")[0, 0].tolist() == [30, 20, 10]  # alpha dropped
    Image.new("LA", (1, 1), (77, 0)).save(tmp_path / "la.png")
    assert read_image_bgr(tmp_path / "la.png")[0, 0].tolist() == [77, 77, 77]


def test_modes_without_a_rule_are_refused(tmp_path):
    Image.new("LAB", (2, 2), (50, 128, 128)).save(tmp_path / "lab.tif")
    assert Image.open(tmp_path / "lab.tif").mode == "LAB"
    with pytest.raises(DatasetError, match=r"lab\.tif: pixel mode LAB has no conversion"):
        read_image_bgr(tmp_path / "lab.tif")


# ---------------------------------------------------------------- EXIF orientation

def exif_image(path, size, orientation=6):
    im = Image.new("RGB", size, (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 4, 4))
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, exif=exif, quality=100)
    return path


def warnings_about(caplog, path):
    return [r for r in caplog.records
            if r.levelno == logging.WARNING and str(path) in r.getMessage()]


def test_exif_warning_where_the_size_cannot_decide(tmp_path, caplog):
    square = exif_image(tmp_path / "square.jpg", (20, 20))
    with caplog.at_level(logging.WARNING):
        shown = read_image_bgr(square, (20, 20))
        read_image_bgr(square, (20, 20))                 # once per file
    assert shown[0, -1, 2] > 200 and shown[0, 0, 2] < 50  # turned: red at the top right
    (record,) = warnings_about(caplog, square)
    assert "EXIF orientation 6 applied" in record.getMessage()
    assert "fits the stored pixels too" in record.getMessage()
    # a flip (orientation 2) never changes the size: the same warning
    flip = exif_image(tmp_path / "flip.jpg", (30, 20), orientation=2)
    with caplog.at_level(logging.WARNING):
        assert read_image_bgr(flip, (30, 20))[0, -1, 2] > 200
    assert len(warnings_about(caplog, flip)) == 1
    # decided by the size: no warning either way
    wide = exif_image(tmp_path / "wide.jpg", (30, 20))
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert read_image_bgr(wide, (20, 30)).shape == (30, 20, 3)   # turned
        assert read_image_bgr(wide, (30, 20)).shape == (20, 30, 3)   # drawn on stored pixels
        assert read_image_bgr(wide).shape == (30, 20, 3)              # no annotation
    assert warnings_about(caplog, wide) == []


def test_exif_warning_from_the_readers(tmp_path, caplog):
    """A VOC annotation without <size> and a square image with a <size>: each warned once,
    when the roidb is built."""
    (tmp_path / "Annotations").mkdir()
    (tmp_path / "JPEGImages").mkdir()
    obj = ("<object><name>dog</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax>"
           "<ymax>5</ymax></bndbox></object>")
    (tmp_path / "Annotations" / "nosize.xml").write_text(f"<annotation>{obj}</annotation>")
    (tmp_path / "Annotations" / "square.xml").write_text(
        f"<annotation><size><width>20</width><height>20</height></size>{obj}</annotation>")
    (tmp_path / "Annotations" / "sized.xml").write_text(
        f"<annotation><size><width>30</width><height>20</height></size>{obj}</annotation>")
    for name, size in (("nosize", (30, 20)), ("square", (20, 20)), ("sized", (30, 20))):
        exif_image(tmp_path / "JPEGImages" / f"{name}.jpg", size)
    with caplog.at_level(logging.WARNING):
        roidb = open_dataset(tmp_path, "train").gt_roidb()
        for e in roidb:
            read_image_bgr(e["image"], (e["width"], e["height"]))
    (nosize,) = warnings_about(caplog, tmp_path / "JPEGImages" / "nosize.jpg")
    assert "the annotation has no size to tell" in nosize.getMessage()
    assert len(warnings_about(caplog, tmp_path / "JPEGImages" / "square.jpg")) == 1
    assert warnings_about(caplog, tmp_path / "JPEGImages" / "sized.jpg") == []
