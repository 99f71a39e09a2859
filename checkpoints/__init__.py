"""Checkpoint and weight files: everything that reads or writes them, beside the model (network/).

    training.py          the training checkpoint, our format: its layout, and `TrainingCheckpointer`,
                         the save / restore pair of a run (model, optimiser, schedule, scaler,
                         progress, RNG states, config)
    weights.py           model weights in every format into the network: `--wts` (`load_model`:
                         ours, and the original's `bmvc_final.pth` through its key table) and
                         backbone files (`load_backbone_weights`)
    backbone_formats.py  the key tables of the four backbone formats (3dcseg, vmz_caffe2,
                         vmz_pytorch, mmaction2)
    variants.py          which network a state dict holds, for files that carry no config
    state_dicts.py       state dicts compared with a model: prefixes, missing / unexpected /
                         mis-shaped tensors in one line
    files.py             reading a user's file safely (weights_only, numpy-only caffe2 pickles)
    convert.py           `python -m checkpoints.convert`: between formats, and back to the original's

This package uses network/ (the model's names) and utils/; network/ and utils/ do not use it.
"""
