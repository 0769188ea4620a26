"""PyramidROIAlign through pycaffe: per level against onnxruntime's RoiAlign (DETECTRON ~
output_half_pixel, HALF_PIXEL ~ half_pixel, AVE) and the numpy references, levels from a numpy
implementation of each level rule (roi_reference.pyramid_levels), and its errors."""
from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest
import roi_reference as ref
from rcnn.roi_harness.nets import PyramidRunner, RoILayerRunner
from rcnn.roi_harness.onnx_reference import roi_align_op
from rcnn.roi_harness.rois import awkward_rois, fpn_levels, proposal_like_rois

RULES = ["FLOOR", "FLOOR_PLUS_ONE", "ROUND", "FINEST_SCALE"]
IMAGE = (256, 320)
SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]
# canonical_size 112 and finest_scale 20 spread the RoIs of a 256 x 320 image over P2-P5
# (finest_scale 28 would make FINEST_SCALE the same rule as FLOOR).
RULE_PARAMS = {"canonical_size": 112, "canonical_level": 4, "finest_scale": 20}


def map_shapes(n: int = 2, c: int = 3) -> list[tuple[int, int, int, int]]:
    return [(n, c, int(IMAGE[0] * s), int(IMAGE[1] * s)) for s in SCALES]


def make_inputs(seed: int, n_proposals: int = 160, n_awkward: int = 48):
    rng = np.random.default_rng(seed)
    shapes = map_shapes()
    maps = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    rois = np.concatenate([proposal_like_rois(rng, n_proposals, 2, *IMAGE),
                           awkward_rois(rng, n_awkward, 2, *IMAGE)])
    return shapes, maps, rois


def pyramid_params(rule: str, **extra) -> dict:
    return {"spatial_scale": SCALES, "level_rule": rule, **RULE_PARAMS, **extra}


def rule_levels(rois: np.ndarray, rule: str) -> np.ndarray:
    return ref.pyramid_levels(rois, len(SCALES), rule, **RULE_PARAMS)


ORT_CASES = list(itertools.product(RULES, ["DETECTRON", "HALF_PIXEL"], [2, 0]))


@pytest.mark.parametrize("rule,alignment,sampling_ratio", ORT_CASES)
def test_matches_onnxruntime_per_level(caffe, rule, alignment, sampling_ratio):
    shapes, maps, rois = make_inputs(len(rule) + sampling_ratio)
    levels = rule_levels(rois, rule)
    assert set(levels[:160]) == {0, 1, 2, 3}   # the proposals reach every level
    runner = PyramidRunner(shapes, len(rois), pyramid_params(rule), pooled_h=7, pooled_w=5,
                           pool="AVE", alignment=alignment, sampling_ratio=sampling_ratio)
    ours = runner.forward(maps, rois)
    # onnxruntime fails on x2 < x1 or y2 < y1 under half_pixel with adaptive sampling (see
    # test_roi_align.py): those rows go to the numpy reference.
    to_ort = np.ones(len(rois), bool)
    if alignment == "HALF_PIXEL" and sampling_ratio == 0:
        to_ort = (rois[:, 3] >= rois[:, 1]) & (rois[:, 4] >= rois[:, 2])
    errs = []
    for lv, (shape, scale) in enumerate(zip(shapes, SCALES, strict=True)):
        rows = levels == lv
        if (rows & to_ort).any():
            theirs = roi_align_op(shape, (7, 5), scale, sampling_ratio,
                                  alignment == "HALF_PIXEL")(maps[lv], rois[rows & to_ort])
            errs.append(np.abs(ours[rows & to_ort] - theirs).max())
        if (rows & ~to_ort).any():
            want, _ = ref.roi_align(maps[lv], rois[rows & ~to_ort], pooled_h=7, pooled_w=5,
                                    spatial_scale=scale, pool="AVE", alignment=alignment,
                                    sampling_ratio=0)
            errs.append(np.abs(ours[rows & ~to_ort] - want).max())
    print(f"PyramidROIAlign {rule} {alignment} sampling_ratio={sampling_ratio}: RoIs per level "
          f"{np.bincount(levels, minlength=4).tolist()}, max |ours - onnxruntime| = "
          f"{max(errs):.3g}")
    assert max(errs) <= 1e-5


@pytest.mark.parametrize("rule", ["FLOOR", "ROUND"])
def test_backward_matches_reference_per_level(caffe, rule):
    shapes, maps, rois = make_inputs(17, 120, 36)
    levels = rule_levels(rois, rule)
    params = dict(pooled_h=3, pooled_w=4, pool="AVE", alignment="DETECTRON", sampling_ratio=2)
    runner = PyramidRunner(shapes, len(rois), pyramid_params(rule), **params)
    runner.forward(maps, rois)
    top_diff = np.random.default_rng(1).standard_normal((len(rois), 3, 3, 4)).astype(np.float32)
    grads = runner.backward(top_diff)
    for lv, scale in enumerate(SCALES):
        rows = levels == lv
        _, want = ref.roi_align(maps[lv], rois[rows], top_diff[rows], spatial_scale=scale,
                                **params)
        err = np.abs(grads[lv] - want).max()
        print(f"PyramidROIAlign {rule} backward level {lv}: max |ours - numpy| = {err:.3g}")
        assert err <= 1e-4


SINGLE_CASES = [
    dict(pool="MAX", alignment="CAFFE"),
    dict(pool="MAX", alignment="CAFFE", bi_type=1, pad_ratio=0.1),
    dict(pool="AVE", alignment="BIN_CORNERS"),
    dict(pool="MAX", alignment="BIN_CORNERS", is_multi_interpolate=False),
    dict(alignment="CROP_AND_RESIZE"),
]


@pytest.mark.parametrize("params", SINGLE_CASES, ids=lambda p: "-".join(map(str, p.values())))
def test_each_roi_is_roialign_on_its_level(caffe, params):
    """Every alignment and pool: each RoI's output is ROIAlign's on its level's map and scale
    (the same code, so bit for bit), and each level's gradient is ROIAlign's for its RoIs."""
    shapes, maps, rois = make_inputs(23, 100, 30)
    levels = rule_levels(rois, "FLOOR")
    runner = PyramidRunner(shapes, len(rois), pyramid_params("FLOOR"), pooled_h=3, pooled_w=3,
                           **params)
    ours = runner.forward(maps, rois)
    top_diff = np.random.default_rng(2).standard_normal(ours.shape).astype(np.float32)
    grads = runner.backward(top_diff)
    for lv, (shape, scale) in enumerate(zip(shapes, SCALES, strict=True)):
        rows = levels == lv
        single = RoILayerRunner("ROIAlign", shape, int(rows.sum()), pooled_h=3, pooled_w=3,
                                spatial_scale=scale, **params)
        np.testing.assert_array_equal(ours[rows], single.forward(maps[lv], rois[rows]))
        np.testing.assert_allclose(grads[lv], single.backward(top_diff[rows]), atol=1e-5)


def test_bin_corners_and_crop_and_resize_match_their_references(caffe):
    """The new alignments through the pyramid, against the numpy references per level
    (outputs with a sample within rounding of the valid range's edge left out)."""
    shapes, maps, rois = make_inputs(5, 100, 24)
    levels = rule_levels(rois, "FLOOR")
    corners = PyramidRunner(shapes, len(rois), pyramid_params("FLOOR"), pooled_h=3, pooled_w=3,
                            pool="AVE", alignment="BIN_CORNERS").forward(maps, rois)
    crop = PyramidRunner(shapes, len(rois), pyramid_params("FLOOR"), pooled_h=3, pooled_w=3,
                         alignment="CROP_AND_RESIZE").forward(maps, rois)
    for lv, (shape, scale) in enumerate(zip(shapes, SCALES, strict=True)):
        rows = levels == lv
        for alignment, ours, (want, _) in [
                ("BIN_CORNERS", corners,
                 (ref.bin_corners_two_step(maps[lv], rois[rows], 3, 3, scale, "AVE"), None)),
                ("CROP_AND_RESIZE", crop, ref.crop_and_resize_tf(maps[lv], rois[rows], 3, 3,
                                                                 scale))]:
            mask = ref.edge_outputs(rois[rows], (3, 3), scale, alignment,
                                    2 if alignment == "BIN_CORNERS" else 1, shape[2:])
            assert mask.mean() < 0.1
            keep = np.broadcast_to(~mask, want.shape)
            err = np.abs(ours[rows] - want)[keep].max(initial=0)
            print(f"PyramidROIAlign {alignment} level {lv}: max |ours - numpy| = {err:.3g}")
            assert err <= 5e-5


def boundary_rois(rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Square boxes on each rule boundary and just below it, with the level index the rule's
    definition gives them (worked out by hand, not computed), plus the clamped extremes."""
    if rule == "ROUND":
        # 2 + round(log2(side / 112)): boundaries at 112 * 2^(k + 0.5)
        edges = [56 * 2**-0.5, 112 * 2**-0.5, 112 * 2**0.5, 224 * 2**0.5]
        sides = [e * f for e in edges for f in (0.999, 1.001)] + [112.0]
        want = [0, 1, 1, 2, 2, 3, 3, 3, 2]
    else:
        # FLOOR: floor(4 + log2(side / 112 + 1e-6)) - 2; FINEST_SCALE: floor(log2(side / 20 +
        # 1e-6)): boundaries at base * 2^k, a box exactly on one belongs to the upper level.
        base = 20.0 if rule == "FINEST_SCALE" else 112.0
        sides = [base * 2.0**k * f for k in range(-1, 4) for f in (0.999, 1.0)]
        want = ([0, 0, 0, 0, 0, 1, 1, 2, 2, 3] if rule == "FINEST_SCALE"
                else [0, 1, 1, 2, 2, 3, 3, 3, 3, 3])
        if rule == "FLOOR_PLUS_ONE":
            sides = [s - 1 for s in sides]    # w = x2 - x1 + 1
    sides += [0.5, 4000.0]
    want += [0, 3]
    rois = np.array([[0, 1, 2, 1 + s, 2 + s] for s in sides], np.float32)
    if rule != "ROUND":
        # sqrt(w * h) a hair below a boundary (h one float32 step short): the 1e-6 lifts it.
        w = {"FLOOR": 112, "FLOOR_PLUS_ONE": 111, "FINEST_SCALE": 40}[rule]
        h = np.nextafter(np.float32(w), np.float32(0))
        rois = np.concatenate([rois, np.array([[0, 0, 0, w, h]], np.float32)])
        want += [1 if rule == "FINEST_SCALE" else 2]
    return rois, np.array(want)


@pytest.mark.parametrize("rule", RULES)
def test_level_rule_boundaries(caffe, rule):
    """Each map holds its level index + 1 everywhere, so the output tells the level used."""
    rois, want = boundary_rois(rule)
    np.testing.assert_array_equal(rule_levels(rois, rule), want)
    extra = np.array([[0, 5, 5, 4, 9],        # x2 < x1: sqrt of a negative area is NaN
                      [0, 3, 3, 3, 3],        # zero area
                      [0, 600, 600, 1, 1]],   # both reversed: a positive area
                     np.float32)
    rois = np.concatenate([rois, extra, [[0, np.nan, 1, 5, 5]]]).astype(np.float32)
    shapes = [(1, 1, 8, 8)] * 4     # every box inside every map (4001 px * 1/1024 < 7)
    maps = [np.full(s, lv + 1, np.float32) for lv, s in enumerate(shapes)]
    runner = PyramidRunner(shapes, len(rois), {**pyramid_params(rule),
                                               "spatial_scale": [1 / 1024] * 4},
                           pooled_h=2, pooled_w=2, pool="AVE", alignment="DETECTRON")
    out = runner.forward(maps, rois)
    np.testing.assert_allclose(out[:-1], np.broadcast_to(
        (rule_levels(rois[:-1], rule) + 1.0)[:, None, None, None], out[:-1].shape), rtol=1e-6)
    assert (out[-1] == 0).all()     # non-finite box: zeros, whatever its level


def test_first_level_and_defaults(caffe):
    """first_level 3 (P3-P5) with the default rule (FLOOR, 224, level 4)."""
    rois = np.array([[0, 0, 0, s, s] for s in (100, 223.9, 224, 447.9, 448, 2000)], np.float32)
    shapes = [(1, 1, 64, 64), (1, 1, 32, 32), (1, 1, 16, 16)]
    maps = [np.full(s, lv + 1, np.float32) for lv, s in enumerate(shapes)]
    runner = PyramidRunner(shapes, len(rois), {"spatial_scale": [1 / 32, 1 / 64, 1 / 128],
                                               "first_level": 3},
                           pooled_h=1, pooled_w=1, pool="AVE", alignment="DETECTRON")
    got = np.round(runner.forward(maps, rois)[:, 0, 0, 0]) - 1
    np.testing.assert_array_equal(got, [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(got, ref.pyramid_levels(rois, 3, "FLOOR", first_level=3))


def test_bench_split_matches_the_layer():
    """The bench's per-level baseline splits RoIs by rois.fpn_levels: the FLOOR rule."""
    rng = np.random.default_rng(0)
    rois = np.concatenate([proposal_like_rois(rng, 300, 1, 800, 1088),
                           awkward_rois(rng, 60, 1, 800, 1088)])
    np.testing.assert_array_equal(fpn_levels(rois, 4), ref.pyramid_levels(rois, 4, "FLOOR"))


def test_ave_backward_is_the_adjoint(caffe):
    shapes, maps, rois = make_inputs(3)
    runner = PyramidRunner(shapes, len(rois), pyramid_params("ROUND"), pooled_h=4, pooled_w=4,
                           pool="AVE", alignment="HALF_PIXEL", sampling_ratio=2)
    out = runner.forward(maps, rois).astype(np.float64)
    t = np.random.default_rng(4).standard_normal(out.shape).astype(np.float32)
    grads = runner.backward(t)
    lhs = sum((g.astype(np.float64) * m).sum() for g, m in zip(grads, maps, strict=True))
    assert abs(lhs - (out * t).sum()) <= 1e-4 * np.abs(out * t).sum()


def test_zero_rois_and_empty_levels(caffe):
    shapes = map_shapes(1, 2)
    maps = [np.ones(s, np.float32) for s in shapes]
    runner = PyramidRunner(shapes, 0, pyramid_params("FLOOR"), pooled_h=2, pooled_w=2)
    assert runner.forward(maps, np.zeros((0, 5), np.float32)).shape == (0, 2, 2, 2)
    assert not any(g.any() for g in runner.backward(np.zeros((0, 2, 2, 2), np.float32)))
    # One small RoI: only P2 gets a gradient, the other levels' diffs are zeroed.
    runner = PyramidRunner(shapes, 1, pyramid_params("FLOOR"), pooled_h=2, pooled_w=2,
                           pool="AVE")
    runner.net.blobs["p3"].diff[...] = 7
    runner.forward(maps, np.array([[0, 10, 10, 30, 30]], np.float32))
    grads = runner.backward(np.ones((1, 2, 2, 2), np.float32))
    assert grads[0].sum() == pytest.approx(8) and not any(g.any() for g in grads[1:])


def run_script(body: str) -> subprocess.CompletedProcess:
    script = ("import numpy as np\nfrom rcnn.roi_harness.nets import PyramidRunner\n"
              "S = [(2, 1, 8, 8), (2, 1, 4, 4)]\nP = dict(pooled_h=2, pooled_w=2)\n" + body)
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


ERROR_CASES = [
    ("PyramidRunner(S, 1, {'spatial_scale': [0.25]}, **P)",
     "pyramid_roi_param has 1 spatial_scale values for 2 feature bottoms"),
    ("PyramidRunner(S, 1, {'spatial_scale': [0.25, 0.125]}, spatial_scale=0.25, **P)",
     "roi_pooling_param.spatial_scale is not used by PyramidROIAlign"),
    ("PyramidRunner(S, 1, {'spatial_scale': [0.25, -1]}, **P)",
     "pyramid_roi_param.spatial_scale[1] (bottom 'p1') must be finite and > 0, got -1"),
    ("PyramidRunner([(2, 1, 8, 8), (2, 2, 4, 4)], 1, {'spatial_scale': [0.25, 0.125]}, **P)",
     "every feature bottom must have the same N and C; bottom 'p1' is 2 2 4 4"),
    ("PyramidRunner(S, 1, {'spatial_scale': [0.25, 0.125]}, alignment='BIN_CORNERS', "
     "sampling_ratio=0, **P)", "alignment BIN_CORNERS samples at the bin corners"),
    ("r = PyramidRunner(S, 2, {'spatial_scale': [0.25, 0.125]}, **P)\n"
     "r.forward([np.zeros(s, np.float32) for s in S], "
     "np.array([[0, 0, 0, 4, 4], [2, 0, 0, 4, 4]], np.float32))",
     "bottom 'rois' row 1 has batch index 2; it must be an integer in [0, 2) "
     "(bottom 'p0' has 2 images)"),
]


@pytest.mark.parametrize("body,message", ERROR_CASES, ids=range(len(ERROR_CASES)))
def test_errors_name_the_layer(caffe, body, message):
    proc = run_script(body)
    assert proc.returncode != 0
    assert f"PyramidROIAlign layer 'pyramid': {message}" in proc.stderr, proc.stderr[-2000:]


def test_bench_pyramid_rows_and_table(caffe, monkeypatch):
    """bench_roi's pyramid input, shrunk: three methods per setting, ratios, the table."""
    from rcnn.bench import roi_speed

    monkeypatch.setitem(roi_speed.PYRAMID_INPUTS, "tiny", (
        [(1, 4, 32, 40), (1, 4, 16, 20), (1, 4, 8, 10), (1, 4, 4, 5)], SCALES, 3, 40, IMAGE))
    rows = roi_speed.pyramid_rows("tiny", 1, 1, False)
    assert [r["pyramid_role"] for r in rows] == [roi_speed.PYRAMID, roi_speed.PER_LEVEL,
                                                 roi_speed.ON_P3] * len(roi_speed.PYRAMID_SETTINGS)
    pyr, own = rows[0], rows[1]
    assert sum(pyr["rois_per_level"]) == 40
    assert pyr["forward_over_per_level"] == pytest.approx(pyr["forward_ms"] / own["forward_ms"])
    text = roi_speed.pyramid_table(rows)
    assert len(text.splitlines()) == 2 + len(roi_speed.PYRAMID_SETTINGS) and "tiny" in text
