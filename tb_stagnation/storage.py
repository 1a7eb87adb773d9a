"""Where logs and checkpoints are read from: a local path, or any fsspec URL (``s3://``, ``gs://``, ...).

One layer below both readers, so that ``tb-stagnation s3://...`` (the event
files, :mod:`tb_stagnation.sources.eventfile`, each read whole) and
``tb-stagnation checkpoints s3://...`` (:mod:`tb_stagnation.checkpoints`, by
byte ranges) find, read and fail alike.

A checkpoint in a bucket is never downloaded whole: readers ask for the
ranges they need (a safetensors header, then one range per tensor, split
into :data:`CHUNK`-byte requests for a large one), and every byte fetched
is counted (:func:`fetched`), so the import can show that it fetched little
more than the tensors themselves. Local paths take the same calls, served
by the operating system.

URLs go through fsspec, imported on first use, with each store's own
configuration: ``AWS_ENDPOINT_URL`` and the usual AWS variables or profile
for S3 and S3-compatible stores (s3fs), application default credentials for
Google Cloud Storage (gcsfs). What goes wrong there (an unknown protocol, a
missing extra, no credentials, no such bucket) is one :class:`StorageError`
whose message says what to do; the commands turn it into exit status 2.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import mmap
import os
import posixpath
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import Any

CHUNK = 64 << 20  # bytes per ranged request: a large tensor is fetched in several
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# The pip extra that installs each protocol's file system.
_EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
_fetched = 0
_lock = threading.Lock()


class StorageError(RuntimeError):
    """A URL that cannot be read: bad, unreachable, or not ours to read; the message says why."""


def is_url(path: str) -> bool:
    """Whether ``path`` names a location through a protocol (``s3://...``), not a local path."""
    return _URL.match(path) is not None


def fetched() -> int:
    """Bytes fetched by this process so far (tensors, headers, indexes), local or remote."""
    return _fetched


def _count(n: int) -> None:
    global _fetched
    with _lock:
        _fetched += n


def normpath(path: str) -> str:
    """``os.path.normpath`` that keeps a URL's ``scheme://``."""
    scheme = _URL.match(path)
    if scheme is None:
        return os.path.normpath(path)
    rest = posixpath.normpath(path[scheme.end():])
    return scheme.group(0) + ("" if rest == "." else rest)


def parent(path: str) -> str:
    """The directory holding ``path`` (``..`` of a local path, the prefix above a URL)."""
    return posixpath.dirname(normpath(path)) if is_url(path) else os.path.normpath(os.path.join(path, os.pardir))


def walk(root: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(root)``, for a URL too (one recursive listing; pruning ``dirs`` in place works alike)."""
    if not is_url(root):
        yield from os.walk(root)
        return
    fs, base = _filesystem(root)
    with _errors(root):
        keys = fs.find(base, withdirs=False, detail=False)
    prefix = root[: _URL.match(root).end()]
    tree: dict[str, tuple[set[str], list[str]]] = {}
    base = base.rstrip("/")
    for key in keys:
        directory, name = posixpath.split(key)
        tree.setdefault(directory, (set(), []))[1].append(name)
        while directory != base and directory.startswith(base + "/"):  # every level up to the root
            above, below = posixpath.split(directory)
            tree.setdefault(above, (set(), []))[0].add(below)
            directory = above
    pending = [base] if base in tree else []
    while pending:
        directory = pending.pop()
        dirs, files = sorted(tree[directory][0]), sorted(tree[directory][1])
        yield prefix + directory, dirs, files
        pending.extend(posixpath.join(directory, d) for d in reversed(dirs))


def isdir(path: str) -> bool:
    """Whether ``path`` is a directory (a prefix holding objects); a bucket that is not there is an error."""
    if not is_url(path):
        return os.path.isdir(path)
    fs, key = _filesystem(path)
    with _errors(path):
        if fs.isdir(key):
            return True
        bucket = key.split("/")[0]
        if _URL.match(path).group(1).lower() in _EXTRAS and bucket and not fs.exists(bucket):
            raise StorageError(f"{path}: no bucket named {bucket!r} (or no access to it)")
        return False


def exists(path: str) -> bool:
    return _ask(path, os.path.exists, "exists")


def listdir(path: str) -> list[str]:
    """The names directly in ``path`` ([] where there is no such directory)."""
    if not is_url(path):
        try:
            return os.listdir(path)
        except OSError:
            return []
    fs, key = _filesystem(path)
    with _errors(path):
        try:
            return [posixpath.basename(p.rstrip("/")) for p in fs.ls(key, detail=False)]
        except FileNotFoundError:
            return []


def size(path: str) -> int:
    return _ask(path, os.path.getsize, "size")


def _ask(path: str, local: Callable[[str], Any], remote: str) -> Any:
    """``local(path)`` for a local path; for a URL, the file system's method of that name."""
    if not is_url(path):
        return local(path)
    fs, key = _filesystem(path)
    with _errors(path):
        return getattr(fs, remote)(key)


def mtime(path: str) -> float | None:
    """When ``path`` was last modified, where the store says (``None`` where not or no such file)."""
    if not is_url(path):
        return os.path.getmtime(path) if os.path.exists(path) else None
    fs, key = _filesystem(path)
    try:
        modified = fs.modified(key)
    except (OSError, NotImplementedError):
        return None
    return modified.timestamp()


def read_bytes(path: str) -> bytes:
    """A small file whole (an index, ``trainer_state.json``), counted."""
    if not is_url(path):
        with open(path, "rb") as f:
            data = f.read()
    else:
        fs, key = _filesystem(path)
        with _errors(path):
            data = fs.cat_file(key)
    _count(len(data))
    return data


def read_range(path: str, offset: int, length: int) -> memoryview:
    """``length`` bytes of ``path`` from ``offset``: one ranged request per :data:`CHUNK`, counted.

    A local file is mapped, not copied: the view is the page cache's own
    pages (read-only), so a 25 MB tensor costs no fresh buffer to fault in
    and fill, which was as long as the float64 sums over it. A URL's bytes
    are fetched into one buffer. Fewer bytes than asked (the file ends
    first) raise ``EOFError``: a truncated file, which the format's reader names.
    """
    if not is_url(path):
        got, view = _mapped(path, offset, length)
    else:
        out = bytearray(length)
        view = memoryview(out)
        fs, key = _filesystem(path)
        got = 0
        with _errors(path):
            while got < length:
                n = min(CHUNK, length - got)
                data = fs.cat_file(key, start=offset + got, end=offset + got + n)
                view[got:got + len(data)] = data
                got += len(data)
                if len(data) < n:
                    break
    _count(got)
    if got < length:
        raise EOFError(f"{path}: {length} bytes asked at {offset}, the file ends after {got}")
    return view


def _mapped(path: str, offset: int, length: int) -> tuple[int, memoryview]:
    """(bytes there, a read-only view of them) of a local file, mapped from the page boundary below ``offset``.

    Only the bytes the file has are mapped (touching a page past its end
    would be SIGBUS); the mapping lives as long as the view or an array over it.
    """
    with open(path, "rb") as f:
        got = max(0, min(length, os.fstat(f.fileno()).st_size - offset))
        if got == 0:
            return 0, memoryview(b"")
        start = offset - offset % mmap.ALLOCATIONGRANULARITY
        mapped = mmap.mmap(f.fileno(), offset - start + got, access=mmap.ACCESS_READ, offset=start)
    return got, memoryview(mapped)[offset - start:]


class _Counted(io.RawIOBase):
    """A file read through its own reads only (no read-ahead), each byte counted in :func:`fetched`.

    For libraries that want a file object (torch's zip reader seeks to each
    record it needs): every ``readinto`` is one ranged request for a URL.
    """

    def __init__(self, raw: Any, name: str) -> None:
        super().__init__()
        self._raw, self.name = raw, name

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._raw.seek(offset, whence)

    def tell(self) -> int:
        return self._raw.tell()

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._raw.read(len(view))
        view[:len(data)] = data
        _count(len(data))
        return len(data)

    def close(self) -> None:
        self._raw.close()
        super().close()


def open_file(path: str) -> io.RawIOBase:
    """``path`` opened for reading by ranges, counted (see :class:`_Counted`); close it after use.

    Unbuffered: a read fetches what it asks for and no more, so what torch's
    zip reader reads of a file is its directory, its pickle and the tensors.
    """
    if not is_url(path):
        raw = open(path, "rb", buffering=0)
    else:
        fs, key = _filesystem(path)
        with _errors(path):
            raw = fs.open(key, "rb", cache_type="none")
    return _Counted(raw, path)


@dataclasses.dataclass(frozen=True)
class Staged:
    """A run directory as :func:`staged` lends it: a local directory to write in, and how to publish it."""

    path: str  # the local directory to work in
    # Make the run directory hold what ``path`` holds now (the files selected); nothing for a local run.
    sync: Callable[[], None]


@contextlib.contextmanager
def staged(run_dir: str, keep: Callable[[str], bool]) -> Iterator[Staged]:
    """A local directory standing for ``run_dir``: itself when local; for a URL, a copy synced back.

    The files of ``run_dir`` that ``keep`` selects (by name) are copied into a
    temporary directory for the block. :meth:`Staged.sync` uploads the files
    added or changed there since the last sync and then deletes from
    ``run_dir`` the files removed there; it runs once more after the block.
    The writer can then work on plain files (and rename them into place) while
    ``tensorboard --logdir s3://...`` finds the result beside the run, and by
    syncing after each file it has made durable locally it makes the bucket
    pass through the same states: a store puts an object whole or not at all
    (S3 and GCS never show part of an upload), so a process killed mid-upload
    leaves the previous version there. A file is changed when its size or
    modification time is (the import's files only grow or get new names).
    Where the store refuses writes, :class:`StorageError` says so before any work.
    """
    if not is_url(run_dir):
        yield Staged(run_dir, lambda: None)
        return
    fs, key = _filesystem(run_dir)
    probe = posixpath.join(key, ".tb-stagnation-write-probe")
    with _errors(run_dir, writing=True):
        fs.pipe_file(probe, b"")
        fs.rm_file(probe)
    local = tempfile.mkdtemp(prefix="tb-stagnation-")
    held: dict[str, tuple[int, int]] = {}  # name -> (mtime_ns, size) of the copy run_dir holds

    def version(name: str) -> tuple[int, int]:
        stat = os.stat(os.path.join(local, name))
        return stat.st_mtime_ns, stat.st_size

    def sync() -> None:
        now = {name: version(name) for name in os.listdir(local) if keep(name)}
        with _errors(run_dir, writing=True):
            for name in sorted(now):
                if held.get(name) != now[name]:
                    fs.put_file(os.path.join(local, name), posixpath.join(key, name))
                    held[name] = now[name]
            for name in sorted(set(held) - set(now)):
                fs.rm_file(posixpath.join(key, name))
                del held[name]

    try:
        for name in (n for n in listdir(run_dir) if keep(n)):
            with _errors(run_dir):
                fs.get_file(posixpath.join(key, name), os.path.join(local, name))
            held[name] = version(name)
        yield Staged(local, sync)
        sync()
    finally:
        shutil.rmtree(local, ignore_errors=True)


def _filesystem(url: str) -> tuple[Any, str]:
    """(fsspec file system, its path) for ``url``; fsspec and the protocol's package are imported here."""
    protocol = _URL.match(url).group(1).lower()
    extra = _EXTRAS.get(protocol)
    hint = f": pip install 'tb-stagnation[{extra}]'" if extra else ""
    try:
        import fsspec
    except ImportError:
        raise StorageError(f"{url}: reading URLs needs fsspec{hint or ' and the package of ' + protocol}") from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as e:
        raise StorageError(f"{url}: the {protocol}:// file system is not installed{hint or f' ({e})'}") from None
    except ValueError as e:
        raise StorageError(f"{url}: not a URL fsspec can read ({e})") from None


# Credentials missing, per store: the exception's class name (no botocore/google import for it).
_NO_CREDENTIALS = {
    "NoCredentialsError": "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                          "(or AWS_PROFILE), and AWS_ENDPOINT_URL for an S3-compatible store",
    "PartialCredentialsError": "incomplete AWS credentials: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
    "DefaultCredentialsError": "no Google Cloud credentials found: run `gcloud auth application-default "
                               "login` or set GOOGLE_APPLICATION_CREDENTIALS",
}


@contextlib.contextmanager
def _errors(url: str, writing: bool = False) -> Iterator[None]:
    """The stores' exceptions as :class:`StorageError`, each with what to do about it."""
    try:
        yield
    except StorageError:
        raise
    except FileNotFoundError as e:
        raise StorageError(f"{url}: no such bucket or path ({e})") from None
    except PermissionError as e:
        what = "cannot write there; import into a local run directory with --logdir DIR" if writing else "access denied"
        raise StorageError(f"{url}: {what} ({e})") from None
    except Exception as e:
        for cls in type(e).__mro__:
            if cls.__name__ in _NO_CREDENTIALS:
                raise StorageError(f"{url}: {_NO_CREDENTIALS[cls.__name__]}") from None
        if isinstance(e, (OSError, ConnectionError)) or "Endpoint" in type(e).__name__:
            raise StorageError(f"{url}: {type(e).__name__}: {str(e)[:300]}") from None
        raise
