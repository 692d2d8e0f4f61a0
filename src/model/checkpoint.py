"""Reading checkpoint files and loading them strictly into a network.

Accepted files: `{'state_dict': ...}` (ours and meta-ood's, with 'epoch', 'optimizer_state_dict',
'loss', ...), NVIDIA's `{'state_dict', 'optimizer', 'epoch', 'mean_iu', 'command'}`, or a bare
state dict (GALD's). Keys may carry the `module.` prefix of (Distributed)DataParallel.
A checkpoint either matches the network key for key and shape for shape or is refused:
there is no partial load.
"""
import logging

import numpy as np
import torch
import torch.nn as nn

from src.errors import MetaOodError

logger = logging.getLogger(__name__)

WRAPPER_PREFIX = "module."
# NVIDIA's file stores the class weights of its training loss (a submodule of its network class);
# the only key that is dropped, by name.
DROPPED_KEYS = ("module.criterion.nll_loss.weight",)
# NVIDIA's 'mean_iu' is a numpy scalar, pickled under numpy 1.x's module name in old files.
# These numpy types are plain data: allowing them keeps torch.load(weights_only=True).
_NUMPY_SCALAR = np.float64(0).__reduce__()[0]  # numpy(._)core.multiarray.scalar
_SAFE_NUMPY_GLOBALS = [
    (_NUMPY_SCALAR, "numpy.core.multiarray.scalar"), (_NUMPY_SCALAR, "numpy._core.multiarray.scalar"),
    np.dtype, np.dtypes.Float64DType, np.dtypes.Float32DType, np.dtypes.Int64DType, np.dtypes.Int32DType,
    np.dtypes.BoolDType]
_LISTED = 5  # keys named per kind of mismatch in an error message


class CheckpointError(MetaOodError, RuntimeError):
    """A checkpoint file that is missing, unreadable or does not fit the network."""


def read_checkpoint(path, mmap=False):
    """The object stored in `path`, tensors on the CPU; never runs code from the file. `mmap`: the
    tensors are mapped, not read (for a look at the plain data beside them)."""
    try:
        with torch.serialization.safe_globals(_SAFE_NUMPY_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except Exception as err:  # torch raises many kinds (pickle, zip, runtime) for a bad file
        # No retry with weights_only=False: that could run code stored in the file.
        raise CheckpointError(f"cannot read checkpoint {path}: {_reason(err)}. Only tensors and plain "
                              "data are read (torch.load with weights_only=True)") from err


def _reason(err):
    """The informative part of torch.load's message."""
    text = " ".join(str(err).split())
    if "WeightsUnpickler error:" in text:  # skip torch's advice to load unsafely
        text = text.split("WeightsUnpickler error:", 1)[1]
        text = text.split(" Please use ", 1)[0].split(" Check the documentation", 1)[0]
    return f"{type(err).__name__}: {text.strip().rstrip('.')[:300]}"


def _is_state_dict(obj):
    return isinstance(obj, dict) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def network_weights(checkpoint, path):
    """The network's tensors in a checkpoint object, keys as in an unwrapped model."""
    weights = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if weights is None:
        weights = checkpoint
    if not _is_state_dict(weights):
        found = list(checkpoint)[:10] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path} holds neither a state dict of tensors nor a dict with one under "
                              f"'state_dict' (found: {found})")
    weights = {k: v for k, v in weights.items() if k not in DROPPED_KEYS}
    if weights and all(k.startswith(WRAPPER_PREFIX) for k in weights):
        weights = {k[len(WRAPPER_PREFIX):]: v for k, v in weights.items()}
    return weights


def _mismatch(model, weights):
    """Descriptions of the missing, unexpected and wrongly shaped keys; empty if `weights` fit."""
    expected = model.state_dict()
    # BatchNorm fills a missing num_batches_tracked itself (files from before torch 0.4.1).
    missing = [k for k in expected if k not in weights and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in weights if k not in expected]
    shapes = [f"{k}: file {tuple(v.shape)}, network {tuple(expected[k].shape)}"
              for k, v in weights.items() if k in expected and v.shape != expected[k].shape]
    lines = []
    for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if keys:
            more = f", ... ({len(keys) - _LISTED} more)" if len(keys) > _LISTED else ""
            lines.append(f"{len(keys)} {what}: {', '.join(keys[:_LISTED])}{more}")
    return lines


def load_weights(model: nn.Module, path, checkpoint=None) -> nn.Module:
    """Loads the checkpoint at `path` into `model` (strict); returns `model`.

    `checkpoint`: what read_checkpoint(path) returned, when the caller has read the file already.
    """
    weights = network_weights(read_checkpoint(path) if checkpoint is None else checkpoint, path)
    problems = _mismatch(model, weights)
    if problems:
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: " + "; ".join(problems))
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as err:
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: {err}") from err
    logger.info("loaded %d tensors from %s", len(weights), path)
    return model


def unwrapped(model: nn.Module) -> nn.Module:
    """The network inside (Distributed)DataParallel wrappers."""
    while isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
        model = model.module
    return model
