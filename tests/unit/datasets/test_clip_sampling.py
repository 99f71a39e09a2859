import numpy as np
import pytest

from datasets.clip_sampling import sample_training_clip, sliding_windows, window_stride


def test_repeat_first_matches_the_original_schedule():
    windows = sliding_windows(12, 8, window_stride(8, 3, dense=False), "repeat_first")
    assert [w.frames for w in windows] == [
        tuple(range(0, 8)), (5,) + tuple(range(5, 12)), (10,) * 6 + (10, 11)]
    assert all(all(w.counted) for w in windows)


def test_repeat_first_pads_with_copies_of_the_window_start():
    windows = sliding_windows(12, 8, 1, "repeat_first")
    assert windows[9].frames == (9, 9, 9, 9, 9, 9, 10, 11)  # SPEC 7.1 example


@pytest.mark.parametrize("tail", ["repeat_first", "shift_back"])
@pytest.mark.parametrize("num_frames", [1, 5, 8, 12, 23, 40])
@pytest.mark.parametrize("dense", [False, True])
def test_every_frame_is_covered(tail, num_frames, dense):
    windows = sliding_windows(num_frames, 8, window_stride(8, 3, dense), tail)
    covered = {f for w in windows for f, counted in zip(w.frames, w.counted) if counted}
    assert covered == set(range(num_frames))
    assert all(len(w.frames) == 8 for w in windows)


def test_dense_schedule_starts_a_window_at_every_frame():
    assert len(sliding_windows(20, 8, window_stride(8, 3, dense=True), "repeat_first")) == 20


def test_shift_back_keeps_windows_inside_and_consecutive():
    windows = sliding_windows(23, 8, 5, "shift_back")
    assert [w.frames[0] for w in windows] == [0, 5, 10, 15]
    assert all(w.frames == tuple(range(w.frames[0], w.frames[0] + 8)) for w in windows)


def test_shift_back_short_sequence_pads_with_uncounted_copies():
    (window,) = sliding_windows(5, 8, 5, "shift_back")
    assert window.frames == (0, 1, 2, 3, 4, 4, 4, 4)
    assert window.counted == (True,) * 5 + (False,) * 3


def test_window_starts_are_increasing_so_frames_can_be_released():
    for tail in ("repeat_first", "shift_back"):
        firsts = [min(w.frames) for w in sliding_windows(37, 8, 5, tail)]
        assert firsts == sorted(firsts)


def test_training_clip_draws_sorted_distinct_frames_within_the_gap():
    rng = np.random.default_rng(0)
    for _ in range(50):
        clip = sample_training_clip(40, 10, 8, 12, rng)
        assert len(clip) == 8 and clip == sorted(clip) and len(set(clip)) == 8
        assert 10 <= min(clip) and max(clip) < 22


def test_training_clip_near_the_end_is_filled_with_the_start_frame():
    clip = sample_training_clip(12, 9, 8, 12, np.random.default_rng(0))
    assert clip == [9, 9, 9, 9, 9, 9, 10, 11]


def test_training_clips_differ_between_draws():
    rng = np.random.default_rng(0)
    assert len({tuple(sample_training_clip(40, 0, 8, 16, rng)) for _ in range(10)}) > 1
