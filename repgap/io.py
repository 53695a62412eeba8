"""Reading data sets from files, for the ``repgap`` command and for scripts.

Every reader opens the file read-only and never unpickles: ``.npy`` and
``.npz`` are read with ``allow_pickle=False`` (a large ``.npy`` is memory
mapped, ``mmap_mode="r"``), ``.pt`` with ``torch.load(weights_only=True)``,
text with :func:`numpy.loadtxt`. A file that cannot be used raises
:class:`DataError` with one line that names the file and the problem.

Only regular files are read: a named pipe, a socket or a device would block
or never end, so they are refused before anything opens them. ``-`` reads
standard input (a ``.npy`` stream, or a table of numbers separated by commas,
tabs or spaces). A ``.npy`` header is checked against the file's size before
any memory is taken, so a truncated or forged header is a one-line error,
not an attempt to allocate what it claims.
"""
import io as _io
import os
import stat
import sys

import numpy as np

#: ``.npy`` files larger than this are memory mapped rather than read.
MMAP_THRESHOLD = 64 * 2**20

READERS = (".npy", ".npz", ".csv", ".txt", ".tsv", ".pt", ".pth")


class DataError(ValueError):
    """A data file that cannot be used (missing, unreadable, wrong shape, not finite)."""


def _pick(mapping, key, path, what):
    keys = list(mapping.keys())
    if key is None:
        if len(keys) == 1:
            return mapping[keys[0]]
        raise DataError(f"{path}: {what} holds {len(keys)} arrays ({', '.join(map(str, keys))}); choose one with --key")
    if key not in mapping:
        raise DataError(f"{path}: no array named {key!r} (it holds {', '.join(map(str, keys)) or 'nothing'})")
    return mapping[key]


def _text_delimiter(ext):
    return {".csv": ",", ".tsv": "\t"}.get(ext)


def _load_text(path, ext):
    delim = _text_delimiter(ext)
    lines = []
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line)
                if len(lines) == 2:
                    break
    first = lines[0] if lines else ""
    skip = 0
    if first:
        cells = [c for c in (first.split(delim) if delim else first.split()) if c.strip()]
        try:
            [float(c) for c in cells]
        except ValueError:
            skip = 1  # a header row of column names
    try:
        return np.loadtxt(path, delimiter=delim, skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as e:
        hint = _delimiter_hint(lines[skip] if len(lines) > skip else first, delim, ext)
        if hint:
            raise DataError(f"{path}: not a table of numbers: {hint}") from None
        detail = str(e).splitlines()[0]
        if len(detail) > 120:
            detail = detail[:117] + "..."
        raise DataError(f"{path}: not a table of numbers ({detail})") from None


_DELIMITER_NAMES = {";": "semicolons (';')", "\t": "tabs", "|": "bars ('|')", ",": "commas", " ": "spaces"}


def _delimiter_hint(line, delim, ext):
    """When a text table fails to parse, say which separator its first row uses instead."""
    line = line.strip()
    if not line:
        return ""
    expected = {",": "commas", "\t": "tabs", None: "spaces or tabs"}[delim]
    for sep in (";", "\t", "|", ",", " "):
        if sep == delim or (delim is None and sep in ("\t", " ")):
            continue
        cells = [c for c in line.split(sep) if c.strip()]
        if len(cells) > 1:
            try:
                [float(c.replace(",", ".")) for c in cells]
            except ValueError:
                continue
            fix = {";": "a .csv must be comma separated: convert it (e.g. `tr ';' ','`, and decimal commas "
                   "to points), or save it as .npy",
                   "\t": "rename it to .tsv", "|": "convert the separators to commas",
                   ",": "rename it to .csv", " ": "rename it to .txt"}[sep]
            return (f"its rows look separated by {_DELIMITER_NAMES[sep]}, but {ext} files are read as separated by "
                    f"{expected}; {fix}")
    return ""


def _load_torch(path, key):
    try:
        import torch
    except ImportError:
        raise DataError(f"{path}: reading .pt files needs torch (pip install 'repgap[torch]')") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for bad files
        raise DataError(f"{path}: not a readable torch file ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None
    if isinstance(obj, dict):
        obj = _pick(obj, key, path, "the torch file")
    elif key is not None:
        raise DataError(f"{path}: --key {key!r} given but the file holds a single {type(obj).__name__}")
    if not isinstance(obj, torch.Tensor):
        raise DataError(f"{path}: holds a {type(obj).__name__}, not a tensor")
    if obj.dtype == torch.bfloat16:
        obj = obj.float()
    return obj.detach().cpu().numpy()


def load_array(path, *, key=None, mmap=None):
    """Read a data set ``(n_samples, n_features)`` from a file.

    Parameters
    ----------
    path : str or path-like
        ``.npy``, ``.npz`` (with ``key`` when it holds several arrays),
        ``.csv`` / ``.tsv`` / ``.txt`` (a header row of names is skipped;
        ``.txt`` is whitespace separated) or ``.pt`` / ``.pth`` (a tensor, or
        a dict of tensors with ``key``).
    key : str, optional
        The array inside an ``.npz`` or a dict saved with ``torch.save``.
    mmap : bool, optional
        Memory map a ``.npy`` file (read-only). Default: when it is larger
        than ``MMAP_THRESHOLD``.

    Returns
    -------
    ndarray (n, D)
        Arrays with more than two axes (images, point clouds) are flattened
        to rows; :func:`read_array` returns them unflattened.

    Raises
    ------
    DataError
        With one line naming the file and the problem.
    """
    return as_rows(read_array(path, key=key, mmap=mmap), os.fspath(path))


def check_regular_file(path):
    """Raise :class:`DataError` unless ``path`` is an existing regular file (a symbolic
    link to one is fine). Named pipes, sockets and devices are refused before they
    are opened: opening a FIFO blocks until a writer appears."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataError(f"{path}: is a directory, not a data file")
    if not stat.S_ISREG(st.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "not a regular file")
        raise DataError(f"{path}: is {kind}, not a regular file; save the data to a file first "
                        "(or pipe them to '-', standard input)")
    return st


def _check_npy_size(path, size):
    """Compare a .npy header's claim with the file's size before anything is allocated."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format._read_array_header(f, version)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"{path}: not a valid .npy file (its header: {str(e).splitlines()[0]})") from None
        offset = f.tell()
    if dtype.hasobject:
        return  # np.load refuses it with its own (pickle) message
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if offset + need > size:
        raise DataError(f"{path}: its header describes {shape} {dtype} values ({need:,} bytes) but the file holds "
                        f"{size - offset:,} bytes of data: it is truncated or corrupt")


def _read_stdin(key):
    if key is not None:
        raise DataError("-: --key applies to .npz and .pt files, not to standard input")
    data = sys.stdin.buffer.read()
    if not data:
        raise DataError("-: standard input is empty")
    if data.startswith(b"\x93NUMPY"):
        try:
            return np.load(_io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise DataError(f"-: cannot read standard input as .npy ({str(e).splitlines()[0]})") from None
    text = data.decode("utf-8", errors="replace")
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
    delim = "," if "," in first else "\t" if "\t" in first else None
    cells = [c for c in (first.split(delim) if delim else first.split()) if c.strip()]
    try:
        [float(c) for c in cells]
        skip = 0
    except ValueError:
        skip = 1
    try:
        return np.loadtxt(_io.StringIO(text), delimiter=delim, skiprows=skip, ndmin=2, dtype=np.float64)
    except ValueError as e:
        hint = _delimiter_hint(first, delim, "standard-input")
        raise DataError(f"-: standard input is not a table of numbers ({hint or str(e).splitlines()[0]})") from None


def read_array(path, *, key=None, mmap=None):
    """The array stored in ``path``, as stored (see :func:`load_array`); ``"-"`` reads standard input."""
    path = os.fspath(path)
    if path == "-":
        return _read_stdin(key)
    st = check_regular_file(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in READERS:
        raise DataError(f"{path}: unknown format {ext or '(no extension)'!r}; use one of {', '.join(READERS)}")
    magic = {".npy": (b"\x93NUMPY", "a NumPy .npy file"), ".npz": (b"PK", "a NumPy .npz (zip) archive")}.get(ext)
    if magic is not None:
        try:
            with open(path, "rb") as f:
                head = f.read(len(magic[0]))
        except PermissionError:
            raise DataError(f"{path}: permission denied") from None
        if head != magic[0]:
            raise DataError(f"{path}: not {magic[1]} (its first bytes are not the format's header)")
        if ext == ".npy":
            _check_npy_size(path, st.st_size)
    try:
        if ext == ".npy":
            if mmap is None:
                mmap = st.st_size > MMAP_THRESHOLD
            X = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        elif ext == ".npz":
            with np.load(path, allow_pickle=False) as z:
                X = _pick(z, key, path, "the archive")
        elif ext in (".pt", ".pth"):
            X = _load_torch(path, key)
        else:
            X = _load_text(path, ext)
    except DataError:
        raise
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except (ValueError, OSError, EOFError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "allow_pickle" in msg or "pickle" in msg.lower():
            msg = "it holds Python objects (pickled data), which repgap never loads; save a numeric array"
        raise DataError(f"{path}: cannot read it as {ext} ({msg})") from None
    if ext != ".npz" and key is not None and ext not in (".pt", ".pth"):
        raise DataError(f"{path}: --key applies to .npz and .pt files only")
    return X


def as_rows(X, name="data"):
    """Check the type and shape of a loaded array and return it as rows ``(n, D)``."""
    if not isinstance(X, np.ndarray):
        X = np.asarray(X)
    if X.dtype.kind not in "fiub":
        raise DataError(f"{name}: holds {X.dtype} values, not numbers")
    if X.ndim < 2:
        raise DataError(f"{name}: has shape {X.shape}; expected (n_samples, n_features) "
                        "(a column of scalars must be saved as shape (n, 1))")
    if X.shape[0] < 2:
        raise DataError(f"{name}: has {X.shape[0]} sample(s); at least 2 are needed")
    if X.ndim > 2:
        X = X.reshape(X.shape[0], -1)
    if X.shape[1] == 0:
        raise DataError(f"{name}: has no features (shape {X.shape})")
    if X.dtype.kind in "iub":
        X = X.astype(np.float64)
    return X


def check_rows_finite(X, name="data", block=1 << 16):
    """Raise :class:`DataError` naming the rows that hold NaN or inf (read in blocks, so a
    memory-mapped file is never loaded whole)."""
    bad, first = 0, None
    for s in range(0, X.shape[0], block):
        ok = np.isfinite(np.asarray(X[s : s + block])).all(axis=1)
        nb = int(ok.size - np.count_nonzero(ok))
        if nb and first is None:
            first = s + int(np.argmin(ok))
        bad += nb
    if bad:
        raise DataError(f"{name}: {bad} row(s) hold NaN or inf (first: row {first}); remove or impute them")
    return X
