"""What kind of array a value is: the one leaf module every path asks.

Torch tensors stay on their device (the torch backend), dask arrays run
block by block on the active scheduler (:mod:`repgap._dask`), memory maps
and ``.npy`` paths are streamed from disk (:mod:`repgap._blocks`), and
everything else becomes a validated numpy array (:mod:`repgap._validation`).
The tests are by type and module name, so that neither torch nor dask is
imported to answer them.
"""
import mmap
import os

import numpy as np


def is_tensor(x):
    """A torch tensor (of any device), without importing torch."""
    return type(x).__module__.startswith("torch") and hasattr(x, "device") and hasattr(x, "dtype")


def take_rows(X, rows):
    """``X[rows]`` for an array or a tensor (``rows`` a host integer array;
    moved to the tensor's device)."""
    if is_tensor(X):
        import torch

        return X[torch.as_tensor(rows, device=X.device)]
    return X[rows]


def is_dask_array(x):
    """A dask array, without importing dask."""
    return type(x).__module__.split(".")[0] == "dask" and hasattr(x, "chunks") and hasattr(x, "to_delayed")


def is_out_of_core(x):
    """A training set to stream from disk: a path to a ``.npy`` or a memory map."""
    if isinstance(x, (str, os.PathLike)):
        return True
    return isinstance(x, np.memmap) or (isinstance(x, np.ndarray) and isinstance(x.base, mmap.mmap))
