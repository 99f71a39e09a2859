"""Measures against hand-computed small cases, and summaries of per-frame records."""

import json
import warnings

import cv2
import numpy as np
import py_sod_metrics
import pytest
from skimage import morphology

from inference_handlers.evaluation.metrics import (boundary_f, boundary_radius, max_f_from_histograms,
                                                   region_similarity, saliency_frame, seg2bmap, statistics)
from inference_handlers.evaluation.protocols import (DEFINITIONS, PROTOCOLS, Protocol, add_frame, format_table,
                                                     merge_summaries, new_record, protocol_for, score_frame,
                                                     scored_indices, sequence_csv_rows, summarise, without_records)


def square(top, left, size=5, shape=(20, 20)):
    mask = np.zeros(shape, dtype=np.uint8)
    mask[top:top + size, left:left + size] = 1
    return mask


def test_region_similarity_definition():
    empty, ground_truth = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    assert region_similarity(empty, ground_truth) == 1.0  # both empty
    ground_truth[0, :2] = True
    assert region_similarity(empty, ground_truth) == 0.0  # empty prediction
    assert region_similarity(ground_truth, empty) == 0.0  # empty ground truth
    prediction = np.zeros((4, 4), bool)
    prediction[0, 1:3] = True
    assert region_similarity(prediction, ground_truth) == pytest.approx(1 / 3)


def test_seg2bmap_marks_pixels_that_differ_from_right_lower_or_diagonal_neighbour():
    boundary = seg2bmap(square(2, 2, size=4, shape=(8, 8)))
    expected = np.zeros((8, 8), bool)
    expected[1, 1:6] = expected[5, 1:6] = expected[1:6, 1] = expected[1:6, 5] = True  # ring, half a pixel up-left
    assert np.array_equal(boundary, expected) and boundary.sum() == 16


def test_boundary_radius_is_davis_0_008_of_the_diagonal():
    assert boundary_radius((480, 854)) == 8
    assert boundary_radius((20, 20)) == 1
    assert boundary_radius((20, 20), bound_th=3) == 3


def test_boundary_f_hand_checked_cases():
    truth = square(5, 5)
    empty = np.zeros_like(truth)
    assert boundary_f(truth, truth) == 1.0
    assert boundary_f(empty, truth) == 0.0   # no predicted boundary: P = 1, R = 0
    assert boundary_f(truth, empty) == 0.0   # no ground-truth boundary: P = 0, R = 1
    assert boundary_f(empty, empty) == 1.0   # neither: P = R = 1
    assert boundary_f(square(5, 6), truth) == 1.0  # 1 px off, within the radius of 1 px
    # 2 px off: of the 20 predicted boundary pixels, the 12 on the top and bottom rows (and the
    # column ends next to them) touch the ground-truth ring; the same count the other way round
    assert boundary_f(square(5, 7), truth) == pytest.approx(0.6)
    with_blob = truth.copy()
    with_blob[16, 16] = 1  # a far blob adds 4 unmatched predicted boundary pixels: P = 20/24, R = 1
    assert boundary_f(with_blob, truth) == pytest.approx(2 * (5 / 6) / (5 / 6 + 1))


def test_statistics_mean_recall_decay():
    values = [1.0, 0.2, 0.8, 0.6, 0.4, 0.3, 0.9]  # bins [0:3] and [5:7] (edges 0, 2, 3, 5, 6)
    stats = statistics(values)
    assert stats["mean"] == pytest.approx(0.6)
    assert stats["recall"] == pytest.approx(4 / 7)
    assert stats["decay"] == pytest.approx(2 / 3 - 0.6)
    assert statistics([0.5, 0.5])["recall"] == 0.0  # strictly above 0.5


def test_saliency_mae_uses_min_max_normalised_maps():
    truth = np.array([[1, 0], [0, 0]], dtype=np.uint8)
    assert saliency_frame(np.array([[255, 0], [255, 0]], np.uint8), truth)["MAE"] == pytest.approx(0.25)
    assert saliency_frame(np.array([[51, 0], [0, 0]], np.uint8), truth)["MAE"] == pytest.approx(0.0)


def test_saliency_f_curve_uses_beta_squared_0_3():
    truth = np.array([[1, 0], [0, 0]], dtype=np.uint8)
    curve = saliency_frame(np.array([[255, 255], [0, 0]], np.uint8), truth)["f_curve"]
    assert max(curve) == pytest.approx(1.3 * 0.5 / (0.3 * 0.5 + 1))  # P = 0.5, R = 1
    assert curve[-1] == pytest.approx(1.3 * 0.25 / (0.3 * 0.25 + 1))  # threshold 0: every pixel


def test_s_measure_degenerate_and_perfect_cases():
    background = np.zeros((2, 2), np.uint8)
    assert saliency_frame(np.array([[255, 0], [0, 0]], np.uint8), background)["S"] == pytest.approx(0.75)
    assert saliency_frame(np.array([[255, 0], [0, 0]], np.uint8), 1 - background)["S"] == pytest.approx(0.25)
    truth = square(5, 5)
    assert saliency_frame(truth * 255, truth)["S"] == pytest.approx(1.0)


def saliency_record(frames):
    record = new_record("saliency")
    for index, (grey, truth) in enumerate(frames):
        add_frame(record, "saliency", str(index), score_frame("saliency", grey >= 128, grey, truth))
    return record


def test_max_f_is_the_max_of_the_mean_curve_not_the_mean_of_maxima():
    truth = np.array([[1, 0], [1, 0]], np.uint8)
    right = np.array([[200, 100], [200, 100]], np.uint8)  # min-max -> 1 on the object: F = 1 above threshold 0
    wrong = np.array([[100, 200], [100, 200]], np.uint8)  # min-max -> 1 off the object: F = 0 above threshold 0
    summary = summarise({"seq": saliency_record([(right, truth), (wrong, truth)])}, "saliency", "all")
    assert summary["metrics"]["maxF"] == pytest.approx(1.3 * 0.5 / (0.3 * 0.5 + 1))  # threshold 0 only
    assert summary["score_name"] == "maxF" and summary["score"] == summary["metrics"]["maxF"]


def test_pooled_beta_1_f_pools_pixels_of_all_frames():
    truth = np.array([[1, 0], [1, 0]], np.uint8)
    first, second = np.array([[255, 0], [255, 0]], np.uint8), np.array([[0, 255], [0, 255]], np.uint8)
    summary = summarise({"seq": saliency_record([(first, truth), (second, truth)])}, "saliency", "all")
    assert summary["metrics"]["F_pooled_beta1"] == pytest.approx(2 / 3)  # all pixels: P = 0.5, R = 1
    assert max_f_from_histograms([0] * 256, [3] + [0] * 255) == 0.0  # no foreground: no NaN


def davis_record(j_values, f_values):
    record = new_record("davis2016")
    for index, (j, f) in enumerate(zip(j_values, f_values)):
        add_frame(record, "davis2016", f"{index:05d}", {"J": j, "F": f})
    return record


def test_davis_summary_is_mean_over_sequences_and_j_and_f_is_the_mean_of_both():
    records = {"a": davis_record([1.0, 1.0, 1.0], [0.5, 0.5, 0.5]), "b": davis_record([0.0], [0.1])}
    summary = summarise(records, "davis2016", "all", ["DAVIS-2016 Annotations/480p"])
    assert summary["metrics"]["J_mean"] == 0.5 and summary["metrics"]["F_mean"] == pytest.approx(0.3)
    assert summary["score"] == pytest.approx(0.4) and summary["score_name"] == "J&F"
    assert summary["mean_J"] == 0.5 and summary["num_frames"] == 4
    assert summary["ground_truth"] == ["DAVIS-2016 Annotations/480p"]
    assert json.loads(json.dumps(without_records(summary))) == without_records(summary)


def test_merged_shards_equal_the_whole_set():
    rng = np.random.default_rng(0)
    records = {name: davis_record(rng.random(n).tolist(), rng.random(n).tolist())
               for name, n in (("a", 5), ("b", 9), ("c", 3))}
    whole = summarise(records, "davis2016", "all", ["gt"])
    shards = [summarise({k: records[k] for k in names}, "davis2016", "all", ["gt"]) for names in (["a", "c"], ["b"])]
    merged = merge_summaries(shards)
    assert merged["metrics"] == pytest.approx(whole["metrics"]) and merged["num_frames"] == whole["num_frames"]
    with pytest.raises(ValueError, match="scored twice"):
        merge_summaries([whole, shards[1]])


def pooled_beta1_f(frames):
    """The original's F from its definition: every pixel of every frame pooled, foreground where
    the grey level is >= t, F = 2PR / (P + R) (0 where nothing is predicted), max over t."""
    grey = np.concatenate([grey.ravel() for grey, _ in frames])
    truth = np.concatenate([truth.ravel() != 0 for _, truth in frames])
    best = 0.0
    for threshold in range(256):
        predicted = grey >= threshold
        hits = np.count_nonzero(predicted & truth)
        if hits:
            precision, recall = hits / np.count_nonzero(predicted), hits / np.count_nonzero(truth)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def pysod_results(frames):
    """maxF, MAE and S of the frames by pysodmetrics' own step() and get_results()."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        measures = {"maxF": py_sod_metrics.Fmeasure(beta=0.3), "MAE": py_sod_metrics.MAE(),
                    "S": py_sod_metrics.Smeasure(alpha=0.5)}
    for grey, truth in frames:
        for measure in measures.values():
            measure.step(grey, np.where(truth != 0, 255, 0).astype(np.uint8))
    return {"maxF": measures["maxF"].get_results()["fm"]["curve"].max(),
            "MAE": measures["MAE"].get_results()["mae"], "S": measures["S"].get_results()["sm"]}


def random_saliency_frames(rng, count, shape=(24, 32)):
    """Random grey maps and random blob ground truths (one frame without foreground)."""
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    frames = []
    for _ in range(count):
        (cy, cx), (ry, rx) = rng.uniform(0.2, 0.8, 2) * shape, rng.uniform(0.1, 0.4, 2) * shape
        truth = (((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1).astype(np.uint8)
        grey = np.clip(rng.normal(80 + 100 * truth, 60), 0, 255).astype(np.uint8)
        frames.append((grey, truth))
    frames[0] = (frames[0][0], np.zeros(shape, np.uint8))
    return frames


def test_saliency_summary_of_shards_equals_pysodmetrics_over_all_frames():
    rng = np.random.default_rng(3)
    sequences = {name: random_saliency_frames(rng, count) for name, count in (("a", 3), ("b", 1), ("c", 4), ("d", 2))}
    records = {name: saliency_record(frames) for name, frames in sequences.items()}
    shards = [summarise({name: records[name] for name in names}, "saliency", "all") for names in (("a", "d"), ("b", "c"))]
    merged = merge_summaries(shards)
    everything = [frame for frames in sequences.values() for frame in frames]
    expected = pysod_results(everything)
    for key in ("maxF", "MAE", "S"):
        assert merged["metrics"][key] == pytest.approx(expected[key], abs=1e-12), key
    assert merged["metrics"]["F_pooled_beta1"] == pytest.approx(pooled_beta1_f(everything), abs=1e-12)
    assert merged["score"] == merged["metrics"]["maxF"] and merged["num_frames"] == 10
    for name, frames in sequences.items():
        per_sequence = pysod_results(frames)
        for key in ("maxF", "MAE", "S"):
            assert merged["sequences"][name][key] == pytest.approx(per_sequence[key], abs=1e-12), (name, key)


def test_frame_sets_and_default_protocols():
    assert scored_indices([0, 1, 2, 3, 4], "all") == [0, 1, 2, 3, 4]
    assert scored_indices([4, 0, 2], "skip_first_last") == [2]
    assert protocol_for("auto", "davis") == "davis2016" and protocol_for("auto", "synthetic") == "davis2016"
    assert protocol_for("auto", "fbms") == "fbms" and protocol_for("auto", "visal") == "saliency"
    assert protocol_for("fbms", "davis") == "fbms"


def test_fbms_headline_is_j_and_prediction_is_resized_to_the_ground_truth():
    truth = square(10, 10, size=10, shape=(40, 40))
    record = new_record("fbms")
    add_frame(record, "fbms", "cars1_1", score_frame("fbms", square(5, 5, size=5, shape=(20, 20)), None, truth))
    summary = summarise({"cars1": record}, "fbms", "all")
    assert summary["score_name"] == "J" and summary["score"] == pytest.approx(1.0)
    assert summary["metrics"]["J_frames"] == pytest.approx(1.0)


def test_a_protocol_is_defined_by_its_table_entry_alone(monkeypatch):
    """Scoring, summaries, merging and tables read only the PROTOCOLS entry, never the name."""
    area = Protocol(score_name="area", frame_measures=("J", "area"),
                    frame_values=lambda labels, probability, truth: {"area": float(labels.mean())},
                    sequence_row=lambda record: {"area_mean": float(np.mean(record["area"]))},
                    overall=lambda records, rows: {"area": float(np.mean([r["area_mean"] for r in rows.values()]))},
                    sequence_score=lambda row: row["area_mean"], bar_measures=("area_mean",))
    monkeypatch.setitem(PROTOCOLS, "area", area)
    monkeypatch.setitem(DEFINITIONS, "area", "mean over sequences of the mean predicted area")
    truth = square(0, 0, size=10, shape=(20, 20))  # 100 of 400 pixels
    records = {}
    for name, sizes in (("a", (10, 20)), ("b", (0,))):
        records[name] = new_record("area")
        for i, size in enumerate(sizes):
            prediction = square(0, 0, size=size, shape=(20, 20))
            add_frame(records[name], "area", f"{i:05d}", score_frame("area", prediction, None, truth))
    # a: areas 100/400 and 400/400 (J 1 and 100/400); b: area 0 (J 0)
    assert records["a"] == {"frames": ["00000", "00001"], "J": [1.0, 0.25], "area": [0.25, 1.0]}
    summary = merge_summaries([summarise({name: records[name]}, "area", "all") for name in records])
    assert summary["sequences"] == {"a": {"frames": 2, "area_mean": 0.625}, "b": {"frames": 1, "area_mean": 0.0}}
    assert (summary["score_name"], summary["score"], summary["num_frames"]) == ("area", 0.3125, 3)
    assert sequence_csv_rows(summary) == [["sequence", "frames", "area_mean"], ["a", 2, 0.625], ["b", 1, 0.0]]
    assert format_table(summary).endswith("overall: area 0.3125")


def toolkit_boundary(mask):
    """The boundary map of the DAVIS toolkit (davis2017-evaluation `_seg2bmap`, D. Martin's BSDS
    definition), written from that definition: a pixel is on the boundary when it differs from its
    east, south or south-east neighbour, the image extended by repeating its last row and column
    (so the last row compares east only, the last column south only, the corner nothing)."""
    extended = np.pad(mask.astype(bool), ((0, 1), (0, 1)), mode="edge")
    here = extended[:-1, :-1]
    return (here != extended[:-1, 1:]) | (here != extended[1:, :-1]) | (here != extended[1:, 1:])


def toolkit_f(prediction, ground_truth, bound_th=0.008):
    """The toolkit's `f_measure` from its definition, with its libraries: matching distance
    ceil(bound_th * image diagonal) pixels; each boundary dilated by cv2.dilate with
    skimage.morphology.disk of that radius; P = predicted boundary pixels inside the dilated
    ground-truth boundary / predicted boundary pixels, R the other way round; an empty boundary
    gives P = 1 (R = 0) or R = 1 (P = 0), both empty F = 1; F = 2PR / (P + R), 0 when P + R = 0."""
    radius = int(np.ceil(bound_th * np.linalg.norm(prediction.shape)))
    element = morphology.disk(radius).astype(np.uint8)
    pred_boundary, gt_boundary = toolkit_boundary(prediction), toolkit_boundary(ground_truth)
    if not pred_boundary.any() or not gt_boundary.any():
        return float(pred_boundary.any() == gt_boundary.any())
    near_gt = cv2.dilate(gt_boundary.astype(np.uint8), element) > 0
    near_pred = cv2.dilate(pred_boundary.astype(np.uint8), element) > 0
    precision = np.count_nonzero(pred_boundary & near_gt) / np.count_nonzero(pred_boundary)
    recall = np.count_nonzero(gt_boundary & near_pred) / np.count_nonzero(gt_boundary)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def test_toolkit_reference_on_a_hand_checked_case():
    truth = square(5, 5)  # 20 x 20: diagonal 28.3, radius ceil(0.23) = 1
    assert toolkit_boundary(truth).sum() == 20 and toolkit_f(square(5, 7), truth) == pytest.approx(0.6)
    assert toolkit_f(np.zeros_like(truth), truth) == 0.0 and toolkit_f(truth, truth) == 1.0


def test_seg2bmap_equals_the_toolkits_boundary_at_the_image_edges():
    corner = square(3, 4, size=5, shape=(8, 9))  # touches the last row and column
    for mask in (corner, 1 - corner, np.ones((5, 6)), square(0, 0, size=3, shape=(5, 6))):
        assert np.array_equal(seg2bmap(mask), toolkit_boundary(mask)), mask


@pytest.mark.parametrize("shape", [(120, 200), (480, 854)])
def test_boundary_f_equals_dilation_with_the_toolkits_disk(shape):
    rng = np.random.default_rng(shape[0])
    rows, cols = np.mgrid[:shape[0], :shape[1]]
    for _ in range(5):
        masks = []
        for _ in range(2):
            cy, cx = rng.uniform(0.2, 0.8, 2) * shape
            ry, rx = rng.uniform(0.05, 0.3, 2) * shape
            blob = ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1
            masks.append(blob ^ (rng.random(shape) < 0.002))  # ragged: isolated pixels in and out
        assert all(np.array_equal(seg2bmap(mask), toolkit_boundary(mask)) for mask in masks)
        assert boundary_f(*masks) == pytest.approx(toolkit_f(*masks), abs=1e-12)
