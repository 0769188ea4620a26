"""The Caffe process: which build it runs, CPU or GPU mode, and the random seeds of numpy and
Caffe."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def caffe_build() -> str:
    """Which Caffe this process imports: its pycaffe folder and the build variant that
    build/<variant>/env.sh names (CAFFE_VARIANT)."""
    import caffe

    where = Path(caffe.__file__).resolve().parent.parent
    return (f"Caffe {caffe.__version__} from {where} "
            f"({os.environ.get('CAFFE_VARIANT', 'unknown')} variant)")


def seed_everything(seed: int) -> None:
    import caffe

    np.random.seed(seed)
    caffe.set_random_seed(seed)


def set_device(gpu: int | None) -> str:
    """GPU mode on a CUDA build when gpu is given, CPU mode otherwise."""
    import caffe

    if gpu is None or gpu < 0:
        caffe.set_mode_cpu()
        device = "CPU"
    else:
        caffe.set_mode_gpu()
        caffe.set_device(gpu)
        device = f"GPU {gpu}"
    log.info("%s, %s mode", caffe_build(), device)
    return device
