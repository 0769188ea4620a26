"""Class names: from a file in the dataset as annotation tools write one, else VOC's 20."""
from __future__ import annotations

import re
from pathlib import Path

VOC_CLASSES = ("__background__", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus",
               "car", "cat", "chair", "cow", "diningtable", "dog", "horse", "motorbike",
               "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")

# ours, labelme2voc's, CVAT's (name:colour:parts:actions), LabelImg's
CLASS_FILES = ("classes.txt", "class_names.txt", "labelmap.txt", "predefined_classes.txt")


def is_background(name: str) -> bool:
    """'_background_', '__background__', 'background' and labelme's '__ignore__'."""
    return bool(re.fullmatch(r"_*background_*|__ignore__", name.strip(), re.IGNORECASE))


def read_class_file(path: Path) -> tuple[str, ...]:
    """The names in a class file, one a line, without comments, background or duplicates."""
    names: list[str] = []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name = line.split(":")[0].strip() if path.name == "labelmap.txt" else line
        if name and not is_background(name) and name not in names:
            names.append(name)
    return tuple(names)


def find_class_file(folders: list[Path]) -> Path | None:
    for folder in folders:
        for name in CLASS_FILES:
            if (folder / name).is_file():
                return folder / name
    return None
