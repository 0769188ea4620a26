from __future__ import annotations

import pytest
from rcnn import config as C


def test_yaml_and_set_overrides(shared_models):
    cfgs = shared_models.parent / "experiments" / "cfgs"
    c = C.load(cfgs / "faster_rcnn_end2end.yml",
               overrides=["TRAIN.SCALES", "[256, 320]", "RNG_SEED", "7", "TEST.NMS", "0.4"])
    assert c.EXP_DIR == "faster_rcnn_end2end"
    assert c.TRAIN.HAS_RPN is True and c.TRAIN.BG_THRESH_LO == 0.0
    assert c.TRAIN.SCALES == (256, 320) and c.RNG_SEED == 7 and c.TEST.NMS == 0.4


def test_sources_apply_in_order_over_fresh_defaults():
    c = C.load({"RNG_SEED": 5, "TRAIN": {"SCALES": [300]}}, {"RNG_SEED": 6})
    assert c.RNG_SEED == 6 and c.TRAIN.SCALES == (300,)
    assert C.load().RNG_SEED == C.DEFAULTS["RNG_SEED"]   # nothing leaks into the next load


def test_activate_copies():
    c = C.load({"RNG_SEED": 11})
    C.activate(c)
    c.TRAIN.BATCH_SIZE = 1
    assert C.cfg.RNG_SEED == 11 and C.cfg.TRAIN.BATCH_SIZE == 128
    C.activate(C.defaults())


def test_defaults_are_py_faster_rcnn_s():
    d = C.defaults()
    assert d.TRAIN.BATCH_SIZE == 128 and d.TRAIN.FG_FRACTION == 0.25
    assert d.TRAIN.RPN_BATCHSIZE == 256 and d.TEST.RPN_POST_NMS_TOP_N == 300
    assert d.TRAIN.BBOX_NORMALIZE_STDS == (0.1, 0.1, 0.2, 0.2)


@pytest.mark.parametrize("pairs,msg", [(["TRAIN.NOPE", "1"], "unknown config key TRAIN.NOPE"),
                                       (["TRAIN.USE_FLIPPED", "3"], "expected true/false"),
                                       (["RNG_SEED"], "KEY VALUE pairs")])
def test_bad_overrides(pairs, msg):
    with pytest.raises(ValueError, match=msg):
        C.load(overrides=pairs)
