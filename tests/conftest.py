import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "python"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("GLOG_minloglevel", "2")

SHARED = ROOT.parent / "shared" / "fixtures" / "py-faster-rcnn"


@pytest.fixture(scope="session")
def caffe():
    import caffe as caffe_module

    caffe_module.set_mode_cpu()
    return caffe_module


@pytest.fixture(scope="session")
def shared_models() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} not present")
    return SHARED / "models"
