from __future__ import annotations

import pytest
from rcnn import config as C


@pytest.fixture(autouse=True)
def _reset():
    C.reset()
    yield
    C.reset()


def test_yaml_and_set_overrides(tmp_path, shared_models):
    cfgs = shared_models.parent / "experiments" / "cfgs"
    C.merge_file(cfgs / "faster_rcnn_end2end.yml")
    assert C.cfg.EXP_DIR == "faster_rcnn_end2end"
    assert C.cfg.TRAIN.HAS_RPN is True and C.cfg.TRAIN.BG_THRESH_LO == 0.0
    C.merge_list(["TRAIN.SCALES", "[256, 320]", "RNG_SEED", "7", "TEST.NMS", "0.4"])
    assert C.cfg.TRAIN.SCALES == (256, 320) and C.cfg.RNG_SEED == 7 and C.cfg.TEST.NMS == 0.4


def test_defaults_are_py_faster_rcnn_s():
    assert C.cfg.TRAIN.BATCH_SIZE == 128 and C.cfg.TRAIN.FG_FRACTION == 0.25
    assert C.cfg.TRAIN.RPN_BATCHSIZE == 256 and C.cfg.TEST.RPN_POST_NMS_TOP_N == 300
    assert C.cfg.TRAIN.BBOX_NORMALIZE_STDS == (0.1, 0.1, 0.2, 0.2)


@pytest.mark.parametrize("pairs,msg", [(["TRAIN.NOPE", "1"], "unknown config key TRAIN.NOPE"),
                                       (["TRAIN.USE_FLIPPED", "3"], "expected true/false"),
                                       (["RNG_SEED"], "KEY VALUE pairs")])
def test_bad_overrides(pairs, msg):
    with pytest.raises(ValueError, match=msg):
        C.merge_list(pairs)
