"""`--input` sources: video files decoded with PyAV and folders of frames."""

import av
import numpy as np
import pytest
from PIL import Image

from datasets import video
from datasets.io import read_rgb
from datasets.video import VideoFrames, VideoSequence, array_sequence, index_input
from inference_handlers.inference.runner import run_inference
from utils.config import InferenceConfig
from utils.errors import UserError

from support.data_trees import write_mini_davis
from support.engines import make_engine
from support.masks import masks_in
from support.videos import decode_all, write_video


@pytest.fixture
def clip_frames(tmp_path):
    root = write_mini_davis(tmp_path / "DAVIS", names=("bear",))
    return [read_rgb(p) for p in sorted((root / "JPEGImages/480p/bear").glob("*.jpg"))]


def test_video_gives_the_same_masks_as_its_frames_in_a_folder(tmp_path, clip_frames):
    video = write_video(tmp_path / "walk.mp4", clip_frames)
    decoded = decode_all(video)
    (tmp_path / "frames").mkdir()
    for index, frame in enumerate(decoded):
        Image.fromarray(frame).save(tmp_path / "frames" / f"{index:05d}.png")
    (from_video,), (from_folder,) = index_input(video), index_input(tmp_path / "frames")
    assert isinstance(from_video, VideoSequence) and from_video.num_frames == len(clip_frames) == 10
    engine = make_engine("shift_back", clip_length=4, clip_overlap=1)
    run_inference(engine, [from_video], InferenceConfig(), results_dir=tmp_path / "out_video", show_progress=False)
    run_inference(engine, [from_folder], InferenceConfig(), results_dir=tmp_path / "out_folder", show_progress=False)
    video_masks, folder_masks = masks_in(tmp_path / "out_video/walk"), masks_in(tmp_path / "out_folder/frames")
    assert list(video_masks) == [f"{i:05d}" for i in range(10)]  # every frame exactly one mask
    assert list(video_masks) == list(folder_masks)
    for name, mask in video_masks.items():
        assert np.array_equal(mask, folder_masks[name]), name


@pytest.mark.parametrize("tail", ["shift_back", "repeat_first"])
def test_video_shorter_than_a_clip_gets_a_mask_per_frame(tmp_path, clip_frames, tail):
    (sequence,) = index_input(write_video(tmp_path / "short.mp4", clip_frames[:3]))
    run_inference(make_engine(tail), [sequence], InferenceConfig(), results_dir=tmp_path / "out", show_progress=False)
    assert sorted(p.name for p in (tmp_path / "out/short").glob("*.png")) == ["00000.png", "00001.png", "00002.png"]


def test_video_reader_streams_forward_and_rewinds_on_demand(tmp_path, clip_frames):
    video = write_video(tmp_path / "walk.mp4", clip_frames)
    decoded = decode_all(video)
    (sequence,) = index_input(video)
    with sequence.open_frames() as frames:
        assert np.array_equal(frames[2], decoded[2])
        assert np.array_equal(frames[7], decoded[7])   # skips ahead without converting 3..6
        assert np.array_equal(frames[7], decoded[7])   # the last frame is kept
        assert np.array_equal(frames[1], decoded[1])   # earlier frame: decodes again from the start
        with pytest.raises(IndexError):
            frames[10]


def test_frame_folder_is_in_natural_order_and_keeps_frame_names(tmp_path, clip_frames):
    folder = tmp_path / "shots"
    folder.mkdir()
    for number in (1, 2, 10):
        Image.fromarray(clip_frames[0]).save(folder / f"frame{number}.jpg")
    (folder / "notes.txt").write_text("not a frame")
    (sequence,) = index_input(folder)
    assert [sequence.frame_name(i) for i in range(sequence.num_frames)] == ["frame1", "frame2", "frame10"]
    assert sequence.mask_paths == {}


def test_bad_inputs_are_user_errors(tmp_path, clip_frames):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("text")
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    for path, message in ((tmp_path / "empty", "no .jpg"), (tmp_path / "notes.txt", "neither a folder"),
                          (tmp_path / "broken.mp4", "cannot decode"), (tmp_path / "missing.mp4", "no such")):
        with pytest.raises(UserError, match=message):
            index_input(path)
    with pytest.raises(UserError, match="uint8"):
        array_sequence([clip_frames[0].astype(np.float32)])


class DecodeCounter:
    """av.open for datasets.video, counting the frames its containers decode."""

    def __init__(self):
        self.decoded, self.real_open = 0, av.open

    def open(self, *args, **kwargs):
        counter, container = self, self.real_open(*args, **kwargs)

        class Counted:
            def __getattr__(self, name):
                return getattr(container, name)

            def __enter__(self):
                return self

            def __exit__(self, *exc_info):
                container.close()

            def decode(self, *streams):
                for frame in container.decode(*streams):
                    counter.decoded += 1
                    yield frame

        return Counted()


@pytest.mark.parametrize("name, first_pts, decoded", [
    ("walk.mp4", None, 0),   # the MP4 sample table: no frame decoded
    ("walk.mkv", None, 10),  # Matroska keeps no frame count: decoded
    ("cut.mp4", -3, 7),      # an edit list drops frames -3..-1: the table's 10 is wrong, decoded
])
def test_video_frames_are_counted_from_the_container_where_it_is_right(tmp_path, clip_frames, monkeypatch,
                                                                      name, first_pts, decoded):
    path = write_video(tmp_path / name, clip_frames, first_pts=first_pts)
    frames_in_file = len(decode_all(path))
    counter = DecodeCounter()
    monkeypatch.setattr(video.av, "open", counter.open)
    (sequence,) = index_input(path)
    assert sequence.num_frames == frames_in_file == 10 + min(first_pts or 0, 0)
    assert counter.decoded == decoded


def test_overlay_video_reads_each_frame_once(tmp_path, clip_frames, monkeypatch):
    (sequence,) = index_input(write_video(tmp_path / "walk.mp4", clip_frames))
    reads, read = [], VideoFrames.__getitem__
    monkeypatch.setattr(VideoFrames, "__getitem__", lambda frames, index: reads.append(index) or read(frames, index))
    run_inference(make_engine("shift_back", clip_length=4, clip_overlap=1), [sequence], InferenceConfig(overlay=True),
                  results_dir=tmp_path / "out", show_progress=False)
    assert sorted(reads) == list(range(10)) and (tmp_path / "out/overlays/walk.mp4").is_file()
