"""The commands a user can run, one thin module each over a library function
(`python main.py -c CONFIG --task train|infer|eval` is the door of training and inference):

    python -m tools.evaluate          score a folder of masks against ground truth (J, F, saliency)
    python -m tools.compare           one HTML page comparing two runs
    python -m tools.benchmark         speed, memory and FLOPs; end-to-end, settings, variants, corpus
    python -m tools.gpu_report        the one prepared run of every GPU measurement
    python -m tools.export            the inference network as torch.export / ONNX, checked
    python -m tools.download          the original's published weights, checked that they load
    python -m tools.convert_weights   weight files between our format, the original's and backbones'
    python -m tools.generate_synthetic  the synthetic DAVIS-layout dataset that only motion solves
    python -m tools.fbms              FBMS-59 as downloaded converted into the original's layout

Each keeps its former name, which runs it by name: inference_handlers.evaluate,
inference_handlers.compare and inference_handlers.report, tasks.benchmark, tasks.gpu_report,
tasks.export, tasks.download, checkpoints.convert and network.convert_weights, datasets.synthetic,
datasets.fbms. Every command answers --help.
"""
