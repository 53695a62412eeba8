"""Output files of the command line: planned before any work, written by rename.

A command knows every file it will write before it reads its data, so every
check that can fail runs first, while failing costs nothing:

* the output folder exists or can be made, and is writable;
* no output is, or is the same file as, an input (``os.path.samefile``:
  also through symbolic and hard links), even with ``--overwrite``;
* the output folder is not, and is not inside, an input folder (a folder of
  images: the figures written there would be read as images by the next
  run), even with ``--overwrite``;
* no output already exists unless ``--overwrite`` is given.

The files are then written into a staging folder inside the output folder
(same file system, so the final ``os.replace`` is an atomic rename) and
moved into place only when the command succeeds. An interrupted or failed
run leaves each output either as it was or complete, never half written,
and the staging folder is removed.
"""
import contextlib
import os
import shutil
import tempfile

_STAGING_PREFIX = ".repgap-partial-"


class OutputError(ValueError):
    """An output that would lose data or cannot be written; reported in one line."""


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _inside(path, folder):
    """Is ``path`` (existing or not) below ``folder``, links resolved?"""
    p, f = os.path.realpath(path), os.path.realpath(folder)
    return p != f and os.path.commonpath([p, f]) == f


def _writable_folder(folder, option):
    """Raise :class:`OutputError` unless ``folder`` is, or can be made, a writable folder."""
    probe = os.path.abspath(folder)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not os.path.isdir(probe):
        raise OutputError(f"{option} {folder}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        what = "is not writable" if probe == os.path.abspath(folder) else f"cannot be made ({probe} is not writable)"
        raise OutputError(f"{option} {folder}: the folder {what}; choose another {option}")


class OutputPlan:
    """The files one command writes into one folder.

    Parameters
    ----------
    folder : str
        The output folder (made if missing).
    names : iterable of str
        The files the command will write there (base names).
    inputs : dict of str to str
        What each input is called (``"DATA"``, ``"--test"``) and its path;
        ``"-"`` (standard input) is never a file.
    overwrite : bool
        Replace existing outputs.
    option : str
        The option that chose the folder, for messages.
    """

    def __init__(self, folder, names, inputs, *, overwrite=False, option="--out"):
        self.folder = folder
        self.names = list(dict.fromkeys(names))
        self.inputs = {k: v for k, v in inputs.items() if v is not None and v != "-"}
        self.overwrite = overwrite
        self.option = option

    def paths(self):
        return [os.path.join(self.folder, n) for n in self.names]

    def check(self):
        """Every check that does not need the results; call it before any work."""
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise OutputError(f"{self.option} {self.folder}: is a file, not a folder")
        for what, src in self.inputs.items():
            if not os.path.isdir(src):
                continue
            where = "" if _same_file(src, self.folder) else "inside " if _inside(self.folder, src) else None
            if where is not None:
                raise OutputError(f"{self.option} {self.folder} is {where}the input image folder {what} ({src}): "
                                  f"files written there would be read as input by the next run; give an "
                                  f"{self.option} outside it")
        _writable_folder(self.folder, self.option)
        for path in self.paths():
            self._check_path(path)

    def _check_path(self, path):
        for what, src in self.inputs.items():
            if os.path.exists(path) and _same_file(path, src):
                raise OutputError(f"refusing to write {path}: it is the input {what} ({src}); "
                                  f"choose another {self.option}")
            if not os.path.exists(path) and os.path.realpath(path) == os.path.realpath(src):
                raise OutputError(f"refusing to write {path}: it is the input {what}; choose another {self.option}")
        if os.path.isdir(path) and not os.path.islink(path):
            raise OutputError(f"cannot write {path}: a folder of that name exists")
        if os.path.lexists(path) and not self.overwrite:
            existing = [p for p in self.paths() if os.path.lexists(p)]
            more = f" and {len(existing) - 1} more" if len(existing) > 1 else ""
            raise OutputError(f"{existing[0]}{more} exist(s) already; pass --overwrite to replace "
                              f"{'them' if more else 'it'}, or choose another {self.option}")

    @contextlib.contextmanager
    def staging(self):
        """A folder to write every output into; its files replace the outputs on success.

        Files the plan did not name are checked as planned ones are before
        they move (an input is never replaced).
        """
        os.makedirs(self.folder, exist_ok=True)
        tmp = tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=self.folder)
        try:
            yield tmp
            written = sorted(os.listdir(tmp))
            for name in written:
                if name not in self.names:
                    self._check_path(os.path.join(self.folder, name))
            for name in written:
                src = os.path.join(tmp, name)
                if os.path.isfile(src):
                    os.replace(src, os.path.join(self.folder, name))
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

