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

Optional formats, each needing one optional extra and saying which when it
is missing: a folder of PNG/JPEG images (Pillow, ``repgap[images]``), HDF5
(h5py, ``repgap[hdf5]``) and Parquet (pyarrow, ``repgap[parquet]``).
``.safetensors`` needs nothing: repgap reads that format itself and checks
its whole header before any tensor's memory is taken. No reader executes
code from a file: Pillow is limited to its PNG and JPEG decoders, HDF5
external links, virtual datasets and external raw storage (which would open
other files) are refused, and pyarrow releases that unpickle extension types
stored in a file (CVE-2023-47248) are refused. Large data are read in
bounded memory: into one array allocated once (a ``.safetensors`` tensor or
a ``.npy`` file larger than ``MMAP_THRESHOLD`` is memory mapped instead), in
chunks of ``READ_CHUNK_BYTES``, one decoded image at a time.
"""
import importlib
import io as _io
import json
import math
import os
import stat
import sys
import warnings

import numpy as np

#: ``.npy`` files larger than this are memory mapped rather than read.
MMAP_THRESHOLD = 64 * 2**20

#: HDF5 datasets and Parquet columns are read in chunks of about this many bytes.
READ_CHUNK_BYTES = 64 * 2**20

#: Images with more pixels than this are refused (as are those Pillow's own
#: ``Image.MAX_IMAGE_PIXELS`` check calls a decompression bomb).
MAX_IMAGE_PIXELS = 2**28

#: The largest ``.safetensors`` header read (the limit of the reference implementation).
SAFETENSORS_MAX_HEADER = 100_000_000

READERS = (".npy", ".npz", ".csv", ".txt", ".tsv", ".pt", ".pth", ".safetensors", ".h5", ".hdf5", ".parquet")

#: Extensions of the images read from a folder (case-insensitive).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")

_KEYED = (".npz", ".pt", ".pth", ".safetensors", ".h5", ".hdf5", ".parquet")
_KEYED_TEXT = ".npz, .pt, .safetensors, HDF5 and Parquet files"

# an optional module -> (the distribution to install, the extra that installs it)
_EXTRAS = {"torch": ("torch", "torch"), "PIL.Image": ("Pillow", "images"), "h5py": ("h5py", "hdf5"),
           "pyarrow.parquet": ("pyarrow", "parquet")}


class DataError(ValueError):
    """A data file that cannot be used (missing, unreadable, wrong shape, not finite)."""


def _optional(module, path, what):
    """Import an optional dependency, or raise :class:`DataError` naming the extra that installs it."""
    dist, extra = _EXTRAS[module]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DataError(f"{path}: reading {what} needs {dist} (pip install 'repgap[{extra}]')") from None


def _first_line(e):
    text = str(e).strip()
    line = text.splitlines()[0] if text else type(e).__name__
    return line if len(line) <= 160 else line[:157] + "..."


def _empty(shape, dtype, path, what):
    """``np.empty``, refused when it would exceed the machine's memory (a forged size in a header)."""
    dtype = np.dtype(dtype)
    need = math.prod(shape) * dtype.itemsize
    try:
        have = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        have = 0
    if have > 0 and need > have:
        raise DataError(f"{path}: {what} would take {need:,} bytes, more than this machine's memory ({have:,})")
    return np.empty(shape, dtype)


def _pick(mapping, key, path, what, noun="array"):
    """``mapping[key]``; without ``key``, its only entry. Names the choices when there is none or several."""
    keys = list(mapping.keys())
    if key is None:
        if len(keys) == 1:
            return mapping[keys[0]]
        if not keys:
            raise DataError(f"{path}: {what} holds no {noun}s")
        raise DataError(f"{path}: {what} holds {len(keys)} {noun}s ({', '.join(map(str, keys))}); "
                        "choose one with --key")
    if key not in mapping:
        raise DataError(f"{path}: no {noun} named {key!r} (it holds {', '.join(map(str, keys)) or 'nothing'})")
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
    torch = _optional("torch", path, ".pt files")
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


# --------------------------------------------------------------------------- image folders
# Pillow's modes kept as they are: mode -> (dtype, channels; 0 for none)
_IMAGE_MODES = {"L": (np.uint8, 0), "RGB": (np.uint8, 3), "RGBA": (np.uint8, 4), "I;16": (np.uint16, 0),
                "I;16L": (np.uint16, 0), "I;16B": (np.uint16, 0), "I": (np.int32, 0)}


def image_files(folder):
    """The image files of a folder, in the order :func:`read_array` stacks them.

    Parameters
    ----------
    folder : str or path-like
        A folder of ``.png``, ``.jpg`` or ``.jpeg`` files (the extension in
        any case).

    Returns
    -------
    list of str
        Their paths, sorted by name (plain string order: ``img10.png``
        comes before ``img2.png``; pad numbers with zeros to keep a
        numeric order). Row ``i`` of the data set is image ``i``. Subfolders
        are not read (not recursive), and hidden files (names starting with
        ``.``, such as macOS's ``._img.png``) and files with other
        extensions (a README, ``.DS_Store``) are ignored, as pytorch-fid's
        ``glob("*.png")`` does.

    Raises
    ------
    DataError
        When the folder holds no image, or one of them is not a regular file.
    """
    folder = os.fspath(folder)
    try:
        with os.scandir(folder) as it:
            names = sorted(e.name for e in it if not e.name.startswith(".") and not e.is_dir()
                           and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS)
    except PermissionError:
        raise DataError(f"{folder}: permission denied") from None
    except OSError as e:
        raise DataError(f"{folder}: cannot be listed ({e.strerror or e})") from None
    if not names:
        raise DataError(f"{folder}: is a directory with no {', '.join(IMAGE_EXTENSIONS)} images in it (image "
                        "folders are read without their subfolders); name a data file or a folder of images")
    files = [os.path.join(folder, n) for n in names]
    for f in files:
        check_regular_file(f)
    return files


def _decode_image(Image, file, expect=None):
    """One image as an array ``(H, W)`` or ``(H, W, C)``; ``expect`` = (shape, dtype, file) of the first one."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with open(file, "rb") as fh, Image.open(fh, formats=("PNG", "JPEG")) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise DataError(f"{file}: {w} x {h} = {w * h:,} pixels, more than repgap reads in one image "
                                    f"({MAX_IMAGE_PIXELS:,}; a decompression bomb?)")
                mode = im.mode if im.mode in _IMAGE_MODES else "RGB"
                dtype, c = _IMAGE_MODES[mode]
                shape = (h, w, c) if c else (h, w)
                if expect is not None and (shape, np.dtype(dtype)) != expect[:2]:
                    raise DataError(f"{file}: is a {shape} {np.dtype(dtype)} image but {expect[2]} is "
                                    f"{expect[0]} {expect[1]}; every image of a folder must have the same height, "
                                    "width and channels")
                if mode != im.mode:
                    im = im.convert("RGB")
                return np.asarray(im, dtype=dtype)
    except (DataError, MemoryError):
        raise
    except Exception as e:  # noqa: BLE001 - Pillow raises many types for bad files (and the bomb warning)
        if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
            raise DataError(f"{file}: refused as a possible decompression bomb ({_first_line(e)})") from None
        raise DataError(f"{file}: not a readable PNG or JPEG image ({_first_line(e)})") from None


def _read_images(folder):
    """A folder of PNG/JPEG images as one array ``(n, H, W[, C])`` (see :func:`load_array`).

    Every image is decoded with Pillow, restricted to its PNG and JPEG
    decoders, and must have the shape and type of the first (a mismatch
    names both files). Channels are kept: mode ``L`` gives ``(H, W)``,
    ``RGB`` ``(H, W, 3)``, ``RGBA`` ``(H, W, 4)`` (uint8); 16-bit grayscale
    (``I;16``) keeps its values as uint16, ``I`` as int32; palette (``P``)
    and every other mode are converted to RGB. Pixels are as stored (EXIF
    orientation is not applied; Pillow reads 16-bit RGB PNGs as 8-bit).
    The output is allocated once and filled one decoded image at a time.
    """
    Image = _optional("PIL.Image", folder, "image folders")
    files = image_files(folder)
    first = _decode_image(Image, files[0])
    out = _empty((len(files),) + first.shape, first.dtype, folder, f"{len(files)} images of shape {first.shape}")
    out[0] = first
    expect = (first.shape, first.dtype, files[0])
    del first
    for i, f in enumerate(files[1:], 1):
        out[i] = _decode_image(Image, f, expect)
    return out


# --------------------------------------------------------------------------- .safetensors
# https://github.com/huggingface/safetensors#format (little-endian, C order)
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "<u2", "I64": "<i8", "I32": "<i4",
                       "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ValueError(f"the name {dup!r} appears twice")
    return dict(pairs)


def _is_count(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _safetensors_header(path):
    """The tensors a ``.safetensors`` file holds, with every claim of its header checked.

    The format (https://github.com/huggingface/safetensors#format): an
    8-byte little-endian unsigned header length ``N``, ``N`` bytes of UTF-8
    JSON mapping each tensor's name to ``{"dtype", "shape",
    "data_offsets": [begin, end]}`` (and an optional ``"__metadata__"``
    object of strings), then the byte buffer; offsets count from the start
    of the buffer, data are little-endian in C order.

    Checked before any tensor's memory is taken: ``N`` is at most the file's
    size less 8 and at most ``SAFETENSORS_MAX_HEADER``; the header is a
    JSON object without repeated names; each dtype is one of ``F64 F32 F16
    BF16 I64 I32 I16 I8 U64 U32 U16 U8 BOOL``; each shape is a list of
    non-negative integers; ``end - begin`` is the shape's size times the
    dtype's; ``0 <= begin <= end <= `` the buffer's size; and the tensors
    tile the buffer exactly (sorted by offset, without gaps or overlaps, to
    its end), as the specification requires, so no two tensors share bytes
    and no bytes hide between them.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    tensors : dict
        name -> ``(numpy dtype, shape, begin, end, safetensors dtype)``.
    start : int
        The byte buffer's offset in the file (``8 + N``).

    Raises
    ------
    DataError
        Naming the file and the first claim that does not hold.
    """
    path = os.fspath(path)
    size = check_regular_file(path).st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise DataError(f"{path}: not a .safetensors file ({size} bytes, shorter than the 8-byte header length)")
        n = int.from_bytes(head, "little")
        if n > size - 8:
            raise DataError(f"{path}: its header length ({n:,} bytes) exceeds the file ({size:,} bytes): it is "
                            "truncated or not a .safetensors file")
        if n > SAFETENSORS_MAX_HEADER:
            raise DataError(f"{path}: its header length ({n:,} bytes) exceeds the format's limit "
                            f"({SAFETENSORS_MAX_HEADER:,})")
        raw = f.read(n)
    if len(raw) != n:
        raise DataError(f"{path}: the file ended inside its header (truncated)")
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise DataError(f"{path}: its header is not valid UTF-8 JSON ({_first_line(e)})") from None
    if not isinstance(header, dict):
        raise DataError(f"{path}: its header is a JSON {type(header).__name__}, not an object of tensors")
    meta = header.pop("__metadata__", {})
    if not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise DataError(f"{path}: its __metadata__ is not an object of strings")
    buffer = size - 8 - n
    tensors = {}
    for name, t in header.items():
        bad = f"{path}: tensor {name!r}"
        if not isinstance(t, dict) or not {"dtype", "shape", "data_offsets"} <= set(t):
            raise DataError(f"{bad} is not an object with dtype, shape and data_offsets")
        dt, shape, offs = t["dtype"], t["shape"], t["data_offsets"]
        if not isinstance(dt, str) or dt not in _SAFETENSORS_DTYPES:
            raise DataError(f"{bad} has dtype {dt!r}; repgap reads {', '.join(_SAFETENSORS_DTYPES)}")
        if not (isinstance(shape, list) and all(_is_count(v) for v in shape)):
            raise DataError(f"{bad} has shape {shape!r}, not a list of non-negative integers")
        if not (isinstance(offs, list) and len(offs) == 2 and all(_is_count(v) for v in offs)
                and offs[0] <= offs[1] <= buffer):
            raise DataError(f"{bad} has data_offsets {offs!r}, outside the {buffer:,} bytes of data")
        dtype = np.dtype(_SAFETENSORS_DTYPES[dt])
        need = math.prod(shape) * dtype.itemsize
        if offs[1] - offs[0] != need:
            raise DataError(f"{bad}: its data_offsets span {offs[1] - offs[0]:,} bytes but its shape {shape} of "
                            f"{dt} needs {need:,}")
        tensors[name] = (dtype, tuple(shape), offs[0], offs[1], dt)
    end = 0
    for name, (_, _, b, e, _) in sorted(tensors.items(), key=lambda kv: kv[1][2:4]):
        if b != end:
            raise DataError(f"{path}: tensor {name!r} starts at byte {b:,} of the data but the tensor before it "
                            f"ends at {end:,} (overlapping tensors, or a gap): a malformed or forged file")
        end = e
    if end != buffer:
        raise DataError(f"{path}: its tensors end at byte {end:,} of the data but the file holds {buffer:,} "
                        "(bytes no tensor describes): a malformed or forged file")
    return tensors, 8 + n


def _read_safetensors(path, key, mmap):
    """One tensor of a ``.safetensors`` file (checked by :func:`_safetensors_header`).

    Memory mapped read-only when larger than ``MMAP_THRESHOLD`` (or with
    ``mmap=True``), else read; BF16 is widened to float32 exactly (its bits
    are the high half of a float32's), F16 stays float16.
    """
    tensors, start = _safetensors_header(path)
    dtype, shape, begin, end, dt = _pick(tensors, key, path, "the file", "tensor")
    count = math.prod(shape)
    if count == 0:
        X = np.zeros(shape, dtype)
    elif mmap or (mmap is None and end - begin > MMAP_THRESHOLD):
        X = np.memmap(path, dtype=dtype, mode="r", offset=start + begin, shape=shape)
    else:
        X = np.fromfile(path, dtype=dtype, count=count, offset=start + begin)
        if X.size != count:
            raise DataError(f"{path}: the file ended inside a tensor (truncated)")
        X = X.reshape(shape)
    if dt == "BF16":
        X = (X.astype(np.uint32) << 16).view(np.float32)
    return X


# --------------------------------------------------------------------------- HDF5
def _h5_datasets(h5py, f):
    found = []
    f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset) else None)
    return found


def _h5_dataset(h5py, f, key, path):
    """The dataset at ``key``, walked link by link: external links are refused before they are followed."""
    parts, node, hops, i = [p for p in key.split("/") if p], f, 0, 0
    while i < len(parts):
        link = node.get(parts[i], getlink=True) if isinstance(node, h5py.Group) else None
        if link is None:
            return _pick({n: n for n in _h5_datasets(h5py, f)}, "/".join(parts), path, "the HDF5 file", "dataset")
        if isinstance(link, h5py.ExternalLink):
            raise DataError(f"{path}: {key!r} is an external link to {link.filename}:{link.path}; repgap reads only "
                            "data stored in the file itself")
        if isinstance(link, h5py.SoftLink):
            hops += 1
            if hops > 40:
                raise DataError(f"{path}: {key!r} is a loop of soft links")
            base = [] if link.path.startswith("/") else parts[:i]
            parts, node, i = base + [p for p in link.path.split("/") if p] + parts[i + 1:], f, 0
            continue
        node, i = node[parts[i]], i + 1
    if not isinstance(node, h5py.Dataset):
        raise DataError(f"{path}: {key!r} is a group, not a dataset (it holds {', '.join(node) or 'nothing'})")
    return node


_KIND_NAMES = {"S": "string", "U": "string", "O": "string, object reference or variable-length",
               "V": "compound (record) or opaque", "c": "complex", "M": "date", "m": "time"}


def _read_hdf5(path, key):
    """A dataset of an HDF5 file, read in chunks of ``READ_CHUNK_BYTES`` rows into one array.

    ``key`` is the dataset's path (``train``, ``group/train``); without it
    the file must hold exactly one dataset at any depth. External links,
    virtual datasets and datasets whose raw data live in other files are
    refused (h5py would open those files); only numeric (integer, float,
    boolean) datasets are read. Filters (compression) come from the HDF5
    library and the plugins installed, never from the file.
    """
    h5py = _optional("h5py", path, "HDF5 files")
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise DataError(f"{path}: not a readable HDF5 file ({_first_line(e)})") from None
    with f:
        if key is None:
            key = _pick({n: n for n in _h5_datasets(h5py, f)}, None, path, "the HDF5 file", "dataset")
        ds = _h5_dataset(h5py, f, key, path)
        if ds.is_virtual or ds.external:
            raise DataError(f"{path}: dataset {key!r} keeps its data in other files (a virtual dataset or external "
                            "storage), which repgap does not open")
        kind = ds.dtype.kind
        if kind not in "fiub":
            raise DataError(f"{path}: dataset {key!r} holds {_KIND_NAMES.get(kind, str(ds.dtype))} values, not numbers")
        out = _empty(ds.shape, ds.dtype.newbyteorder("="), path, f"dataset {key!r} {ds.shape}")
        try:
            if out.ndim == 0:
                out[()] = ds[()]
            elif out.size:
                step = max(1, READ_CHUNK_BYTES // max(1, out[0].nbytes))
                for s in range(0, out.shape[0], step):
                    sel = np.s_[s : s + step]
                    ds.read_direct(out, sel, sel)
        except (OSError, ValueError, TypeError) as e:
            raise DataError(f"{path}: cannot read dataset {key!r} ({_first_line(e)})") from None
    return out


# --------------------------------------------------------------------------- Parquet
def _parquet_kind(pa, t):
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t):
        return "number"
    if (pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)) \
            and _parquet_kind(pa, t.value_type) == "number":
        return "list"
    return None


def _parquet_columns(pa, schema, key, path):
    """The columns chosen (see :func:`_read_parquet`) and whether they are one list column."""
    kinds = {f.name: _parquet_kind(pa, f.type) for f in schema}
    listing = ", ".join(f"{f.name} ({f.type})" for f in schema)
    if key is None:
        index = [c for c in ((schema.pandas_metadata or {}).get("index_columns") or []) if isinstance(c, str)]
        names = [n for n in kinds if n not in index]
        lists = [n for n in names if kinds[n] == "list"]
        if len(names) == 1 and lists:
            return names, True
        if names and all(kinds[n] == "number" for n in names):
            return names, False
        other = [n for n in names if kinds[n] is None]
        why = (f"its columns {', '.join(other)} are not numbers" if other else
               f"it holds list column(s) {', '.join(lists)} beside others" if lists else "it holds no columns")
        raise DataError(f"{path}: {why}; choose a list column, or numeric columns separated by commas, with --key "
                        f"(it holds {listing or 'nothing'})")
    names = [c.strip() for c in key.split(",") if c.strip()]
    for n in names:
        if n not in kinds:
            raise DataError(f"{path}: no column named {n!r} (it holds {listing or 'nothing'})")
        if kinds[n] is None:
            raise DataError(f"{path}: column {n!r} holds {schema.field(n).type} values, not numbers or lists of numbers")
    if any(kinds[n] == "list" for n in names):
        if len(names) > 1:
            raise DataError(f"{path}: --key {key!r}: a list column is read alone, not beside other columns")
        return names, True
    return names, False


def _read_parquet(path, key):
    """A Parquet file as rows: one list column, or numeric columns side by side.

    A list column (a fixed-size list, or a list whose rows all have the same
    length) gives one row per row of the file; numeric columns (integers,
    floats, booleans) give one feature each, in column order. Without
    ``key`` the file must hold a single list column or only numeric columns
    (a pandas index stored as a column is left out); ``key`` names one list
    column or numeric columns separated by commas. Null values are refused.
    The row count comes from the file's metadata: the output is allocated
    once and filled batch by batch (``READ_CHUNK_BYTES`` each).
    """
    pq = _optional("pyarrow.parquet", path, "Parquet files")
    import pyarrow as pa
    import pyarrow.compute as pc

    version = tuple(int(v) for v in pa.__version__.split(".")[:3] if v.isdigit())
    if version < (14, 0, 1):
        raise DataError(f"{path}: pyarrow {pa.__version__} unpickles Python extension types stored in a file "
                        "(CVE-2023-47248); upgrade to pyarrow >= 14.0.1 to read Parquet files")
    try:
        pf = pq.ParquetFile(path)
        n = pf.metadata.num_rows
        names, is_list = _parquet_columns(pa, pf.schema_arrow, key, path)
        types = [pf.schema_arrow.field(c).type for c in names]
        if is_list:
            width = getattr(types[0], "list_size", None)
            if width is None:  # a variable list: the first row sets the width
                first = next(pf.iter_batches(batch_size=1, columns=names), None)
                width = 0 if first is None or first.num_rows == 0 or not first.column(0).is_valid() \
                    else len(first.column(0)[0])
            dtype = np.dtype(types[0].value_type.to_pandas_dtype())
            shape = (n, width)
        else:
            dtype = np.result_type(*[np.dtype(t.to_pandas_dtype()) for t in types])
            shape = (n, len(names))
        out = _empty(shape, dtype, path, f"{n} rows of {shape[1]} {dtype} values")
        step = max(1, READ_CHUNK_BYTES // max(1, shape[1] * dtype.itemsize))
        nulls, pos = dict.fromkeys(names, 0), 0
        for batch in pf.iter_batches(batch_size=step, columns=names):
            m = batch.num_rows
            if pos + m > n:
                raise DataError(f"{path}: holds more rows than its metadata says ({n}): a corrupt file")
            for j, c in enumerate(names):
                col = batch.column(j)
                if not is_list:
                    nulls[c] += col.null_count
                    if not col.null_count:
                        out[pos : pos + m, j] = col.to_numpy(zero_copy_only=False)
                    continue
                values = col.flatten()
                if col.null_count or values.null_count:  # rows that are null or hold a null
                    rows = np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))
                    if values.null_count:
                        parents = pc.list_parent_indices(col).to_numpy(zero_copy_only=False)
                        rows = np.union1d(rows, parents[values.is_null().to_numpy(zero_copy_only=False)])
                    nulls[c] += rows.size
                    continue
                if not pa.types.is_fixed_size_list(col.type):
                    lengths = pc.list_value_length(col).to_numpy(zero_copy_only=False)
                    bad = np.flatnonzero(lengths != width)
                    if bad.size:
                        r = int(bad[0])
                        raise DataError(f"{path}: column {c!r} is ragged: row {pos + r} holds {lengths[r]} values "
                                        f"but row 0 holds {width}")
                out[pos : pos + m] = values.to_numpy(zero_copy_only=False).reshape(m, width)
            pos += m
    except DataError:
        raise
    except (pa.ArrowException, OSError, ValueError, TypeError, KeyError) as e:
        raise DataError(f"{path}: not a readable Parquet file ({_first_line(e)})") from None
    if pos != n:
        raise DataError(f"{path}: holds {pos} rows but its metadata says {n}: a corrupt file")
    for c, k in nulls.items():
        if k:
            raise DataError(f"{path}: column {c!r} holds nulls in {k} row(s); drop or impute them")
    return out


def load_array(path, *, key=None, mmap=None):
    """Read a data set ``(n_samples, n_features)`` from a file or a folder of images.

    Parameters
    ----------
    path : str or path-like
        ``.npy``, ``.npz`` (with ``key`` when it holds several arrays),
        ``.csv`` / ``.tsv`` / ``.txt`` (a header row of names is skipped;
        ``.txt`` is whitespace separated), ``.pt`` / ``.pth`` (a tensor, or
        a dict of tensors with ``key``), ``.safetensors`` (a tensor, ``key``
        when several), ``.h5`` / ``.hdf5`` (a dataset, ``key`` its path when
        several; needs h5py), ``.parquet`` (a list column or numeric
        columns, see ``key``; needs pyarrow), or a folder of ``.png`` /
        ``.jpg`` / ``.jpeg`` images, one row per image in sorted name order
        (see :func:`image_files`; needs Pillow).
    key : str, optional
        The array inside an ``.npz``, a dict saved with ``torch.save`` or a
        ``.safetensors`` file; the dataset's path in an HDF5 file (``train``,
        ``group/train``); in a Parquet file, one list column or numeric
        columns separated by commas (``x,y,z``).
    mmap : bool, optional
        Memory map a ``.npy`` file or a ``.safetensors`` tensor (read-only).
        Default: when it is larger than ``MMAP_THRESHOLD``.

    Returns
    -------
    ndarray (n, D)
        Arrays with more than two axes (images, point clouds) are flattened
        to rows; :func:`read_array` returns them unflattened (an image
        folder as ``(n, H, W)`` or ``(n, H, W, C)``, of the images' integer
        type). Integers and booleans become float64 here.

    Raises
    ------
    DataError
        With one line naming the file and the problem (also when an
        optional dependency is missing: it names the extra to install).
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
        raise DataError(f"-: --key applies to {_KEYED_TEXT}, not to standard input")
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


def _check_input(path):
    """Raise :class:`DataError` unless ``path`` can be an input: ``-``, a regular file,
    or a folder holding images (listed, not decoded: see :func:`image_files`)."""
    path = os.fspath(path)
    if path != "-":
        if os.path.isdir(path):
            image_files(path)
        else:
            check_regular_file(path)


def read_array(path, *, key=None, mmap=None):
    """The array stored in ``path``, as stored (see :func:`load_array`); ``"-"`` reads standard input.

    A folder is read as images (:func:`image_files` says which, in what
    order). Standard input is a ``.npy`` stream or a table of numbers.
    """
    path = os.fspath(path)
    if path == "-":
        return _read_stdin(key)
    if os.path.isdir(path):
        if key is not None:
            raise DataError(f"{path}: --key applies to {_KEYED_TEXT}, not to a folder of images")
        return _read_images(path)
    st = check_regular_file(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in READERS:
        raise DataError(f"{path}: unknown format {ext or '(no extension)'!r}; use one of {', '.join(READERS)}, "
                        f"or a folder of {', '.join(IMAGE_EXTENSIONS)} images")
    if key is not None and ext not in _KEYED:
        raise DataError(f"{path}: --key applies to {_KEYED_TEXT} only")
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
        elif ext == ".safetensors":
            X = _read_safetensors(path, key, mmap)
        elif ext in (".h5", ".hdf5"):
            X = _read_hdf5(path, key)
        elif ext == ".parquet":
            X = _read_parquet(path, key)
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
