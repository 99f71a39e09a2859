"""3DC-Seg: train, infer and evaluate from a YAML run config.

    python main.py -c run_configs/demo.yaml --task train
    python main.py -c run_configs/demo.yaml --task infer --wts saved_models/demo/last.pth
    python main.py -c run_configs/demo.yaml --task infer --wts ... inference.dense=true
    python main.py -c run_configs/demo.yaml --task infer --wts ... --input my_video.mp4   (results/demo/my_video/)
    python main.py -c run_configs/demo.yaml --task infer --wts ... --input clips/        (results/demo/clips/)
    python main.py -c run_configs/demo.yaml --task infer --wts ... --input 'clips/*.mp4' (or --input @list.txt)
    python main.py -c run_configs/demo.yaml --task infer --wts ... --input rtsp://camera/stream (or /dev/video0,
        or - for a stream on stdin; live: masks as frames complete, inference.live.*, tasks/live.py)

Exit status: 0 done; 2 a user error (one 'error:' line); 3 an --input of many videos where some
failed (unreadable, truncated, no frame): the others are done, the failed ones are listed in
results/<name>/<input name>/failures.json and counted in the last line; 128 + N stopped by signal N.
"""

import argparse
import logging
import sys
from pathlib import Path

from utils.config import Task
from utils.errors import UserError, report
from utils.files import os_error_text

logger = logging.getLogger("main")

COMMAND_LINE_TASKS = (Task.TRAIN, Task.INFER, Task.EVAL)
SOME_VIDEOS_FAILED = 3  # exit status of an --input of many videos of which some failed (tasks/corpus.py)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     usage="%(prog)s -c CONFIG --task {train,infer,eval} [--wts CHECKPOINT] "
                                           "[--input VIDEO_OR_FOLDER] [--verbose] [section.key=value ...]")
    parser.add_argument("-c", "--config", required=True, help="run config (YAML), e.g. run_configs/demo.yaml")
    task_names = [task.value for task in COMMAND_LINE_TASKS]
    parser.add_argument("--task", choices=task_names,
                        help="required. train: fit the model; infer: write masks and scores; "
                             "eval: scores only, no files")
    parser.add_argument("--wts", "-w", help="checkpoint: ours or the original 3DC-Seg format "
                                            "(required for infer/eval; for train, the initial weights of a fresh run)")
    parser.add_argument("--input", help="infer: a video file (mp4/avi/mov/mkv/webm/m4v) or a folder of frames "
                                        "(jpg/png/bmp) instead of the test set, no ground truth needed; or many: a "
                                        "folder of videos / frame folders, a quoted glob ('clips/*.mp4') or "
                                        "@list.txt (one path a line); exit status 3 when some of them failed; or "
                                        "live: a stream URL (rtsp/rtmp/http(s)/tcp/udp/srt://), /dev/videoN, or - "
                                        "for an encoded stream on stdin")
    parser.add_argument("--verbose", action="store_true",
                        help="also show on the console what otherwise goes to the log file only: the resolved "
                             "config, the software versions and the scores table")
    parser.add_argument("overrides", nargs="*", help="config overrides as section.key=value")
    args = parser.parse_intermixed_args(argv)
    if args.task is None:
        parser.exit(2, f"error: --task is required: one of {', '.join(task_names)}\n")
    args.task = Task(args.task)
    return args


def check_input_argument(task: Task, input_path: str | None) -> None:
    if input_path and task is not Task.INFER:
        raise UserError(f"--input goes with --task infer (it has no ground truth to {task} with)")


def train_command(config_path: str, overrides: list[str]) -> str:
    """The command that trains the checkpoints of this config (and run name)."""
    names = [override for override in overrides if override.startswith("name=")]
    return " ".join(["python main.py -c", config_path, "--task train", *names[-1:]])


def check_weights_argument(task: Task, wts: str | None, model_dir: Path, train_first: str) -> None:
    """--wts names a checkpoint file. For infer / eval, a missing one names the checkpoints in
    `model_dir` (saved_models/<name>), or while it holds none, says to run `train_first` (the
    training command) first."""
    if task is not Task.TRAIN and not wts:
        raise UserError(f"--task {task} needs --wts <checkpoint>, e.g. saved_models/<name>/last.pth")
    if not wts or Path(wts).is_file():
        return
    from checkpoints.training import check_weights_file, checkpoint_names, checkpoints_in
    trained = checkpoints_in(model_dir)
    if task is Task.TRAIN:
        hint = ""
    elif trained:
        hint = f"; {model_dir} holds {checkpoint_names(trained)}"
    else:
        hint = f"; train first: {train_first}"
    check_weights_file(wts, "--wts", hint)


def run_train(cfg, run, wts) -> int:
    """Train; the exit status is 0 when every epoch is done, 128 + the signal's number when a
    SIGTERM / SIGINT stopped the run after writing last.pth (run the same command to resume)."""
    import signal
    from tasks.train import train
    summary = train(cfg, run, wts)
    if summary["stopped"]:
        return 128 + getattr(signal, summary["stopped"], signal.SIGTERM)
    if summary["already_finished"]:
        logger.info("nothing to train: %s had finished all %d epochs (%d iterations); choose another name=... "
                    "to train again", run.model_dir / "last.pth", summary["epochs"], summary["iterations"])
        return 0
    best = (f", best validation score {summary['best_score']:.4f} after epoch {summary['best_epoch']} "
            f"(best.pth)" if summary["best_score"] is not None else "")
    logger.info("finished training: %d epochs, %d iterations in %.0f s, last mean loss %.4f%s; "
                "checkpoint %s", summary["epochs"], summary["iterations"], summary["seconds"],
                summary["loss"], best, run.model_dir / "last.pth")
    return 0


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        from utils.config import load_config, validate
        from tasks.distributed import destroy_process_group
        from tasks.setup import SAVED_MODELS, release_output_lock, setup_run
        cfg = load_config(args.config, args.overrides)
        check_input_argument(args.task, args.input)
        validate(cfg, args.task, input_path=args.input)
        check_weights_argument(args.task, args.wts, SAVED_MODELS / cfg.name, train_command(args.config, args.overrides))
        try:
            run = setup_run(cfg, args.task, args.input, verbose=args.verbose)
            if args.task is Task.TRAIN:
                return run_train(cfg, run, args.wts)
            from tasks.infer import infer
            summary = infer(cfg, run, args.wts, write_files=args.task is Task.INFER, input_path=args.input)
            if summary.get("stopped"):  # a live source's read ended by SIGTERM / SIGINT (tasks/live.py)
                from tasks.live import stop_status
                return stop_status(summary)
            return SOME_VIDEOS_FAILED if summary.get("failed_videos") else 0
        finally:
            release_output_lock()
            destroy_process_group()
    except UserError as error:
        return report(error)
    except OSError as error:  # a file the system refused outside the atomic writers (log, tensorboard)
        return report(UserError(f"{error.filename}: {os_error_text(error)}" if error.filename else str(error)))
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130
    return 0


if __name__ == "__main__":
    status = main()
    if "tasks.distributed" in sys.modules:  # a run was set up: a torchrun worker ends without teardown
        from tasks.distributed import exit_worker, launched_by_torchrun
        if launched_by_torchrun():
            exit_worker(status)
    sys.exit(status)
