"""The on-disk tuning cache: one JSON file per user, shared by processes.

Writes merge with what other processes wrote, under an exclusive file lock, into a
temporary file renamed over the old one, so a reader never sees a half-written file.
A corrupt file, or one written by another version of cnnkernels, is ignored with a
warning and rebuilt on the next write.
"""
import fcntl
import hashlib
import json
import os
import platform
import tempfile
import threading
import warnings

FORMAT = 1
_fingerprint = None
# The file keeps the most recently tuned entries up to this many: every write rewrites it, so with no bound an
# application meeting ever new shapes paid more at each (3000 entries: 150 ms a write, 28 ms to load at import).
MAX_ENTRIES = 1000


def _version():
    from . import __version__
    return __version__


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fingerprint():
    """What makes tuning results of one machine and build invalid on another: CPU, ISA, version."""
    global _fingerprint
    if _fingerprint is None:
        from . import _cpp_backend
        isa = _cpp_backend.module.info()["isa"] if _cpp_backend.module is not None else "none"
        raw = f"{cpu_model()}|{platform.machine()}|isa={isa}|cnnkernels={_version()}"
        _fingerprint = hashlib.sha1(raw.encode()).hexdigest()[:12]
    return _fingerprint


def default_dir():
    if os.environ.get("CNNKERNELS_CACHE_DIR"):
        return os.environ["CNNKERNELS_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cnnkernels")


class TuningCache:
    """Tuning entries by key, loaded lazily from ``<dir>/tuning.json``."""

    def __init__(self, directory=None):
        self.directory = directory or default_dir()
        self.path = os.path.join(self.directory, "tuning.json")
        self._entries = None
        self._mtime = None
        self._lock = threading.Lock()

    # -- reading --------------------------------------------------------------
    def _read_file(self, warn=True):
        """Entries in the file ({} when absent, corrupt or foreign)."""
        try:
            with open(self.path) as f:
                data = json.load(f)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except (OSError, ValueError) as exc:
            if warn:
                warnings.warn(f"cnnkernels: ignoring unreadable tuning cache {self.path} ({exc}); it will be rebuilt",
                              RuntimeWarning, stacklevel=4)
            return {}
        if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
            if warn:
                warnings.warn(f"cnnkernels: ignoring tuning cache {self.path} of an unknown format; it will be rebuilt",
                              RuntimeWarning, stacklevel=4)
            return {}
        if data.get("version") != _version():
            if warn:
                warnings.warn(f"cnnkernels: ignoring tuning cache {self.path} written by cnnkernels "
                              f"{data.get('version')} (this is {_version()}); it will be rebuilt",
                              RuntimeWarning, stacklevel=4)
            return {}
        entries = valid_entries(data["entries"])
        if warn and len(entries) < len(data["entries"]):
            warnings.warn(f"cnnkernels: ignoring {len(data['entries']) - len(entries)} malformed entries of the tuning "
                          f"cache {self.path}; they will be tuned again", RuntimeWarning, stacklevel=4)
        return entries

    def _stat_mtime(self):
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return None

    def _refresh(self):
        mtime = self._stat_mtime()
        if self._entries is None or mtime != self._mtime:
            self._entries = self._read_file()
            self._mtime = mtime

    def load(self):
        """Read the file now (the first get() otherwise does)."""
        with self._lock:
            self._refresh()

    def get(self, key):
        entries = self._entries
        if entries is not None and key in entries:
            return entries[key]
        with self._lock:   # a miss: another process may have tuned it since we last read
            self._refresh()
            return self._entries.get(key)

    def entries(self):
        with self._lock:
            self._refresh()
            return dict(self._entries)

    # -- writing --------------------------------------------------------------
    def put(self, key, entry):
        self.update({key: entry})

    def update(self, new_entries, replace=False):
        """Merge entries into the file (or replace its contents) atomically, under a file lock."""
        with self._lock:
            if self._entries is None:
                self._entries = {}
            self._entries.update(new_entries)
            try:
                os.makedirs(self.directory, exist_ok=True)
                with open(self.path + ".lock", "a") as lock:
                    fcntl.flock(lock, fcntl.LOCK_EX)
                    try:
                        merged = {} if replace else self._read_file(warn=False)
                        merged.update(new_entries)
                        merged = _newest(merged, MAX_ENTRIES, new_entries)
                        self._write(merged)
                        self._entries = merged
                        self._mtime = self._stat_mtime()
                    finally:
                        fcntl.flock(lock, fcntl.LOCK_UN)
            except OSError as exc:   # a read-only home must not break convolution
                warnings.warn(f"cnnkernels: could not write tuning cache {self.path} ({exc}); "
                              "choices are kept for this process only", RuntimeWarning, stacklevel=3)

    def _write(self, entries):
        fd, tmp = tempfile.mkstemp(prefix=".tuning-", suffix=".json", dir=self.directory)
        try:
            with os.fdopen(fd, "w") as f:
                # compact: indented, the encoder took 3.5x longer (121 against 34 ms for 3000 entries)
                json.dump({"format": FORMAT, "version": _version(), "entries": entries}, f, separators=(",", ":"),
                          sort_keys=True)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise

    def clear(self):
        self.update({}, replace=True)


def _number(v):
    return type(v) in (int, float)


def _valid_entry(entry):
    """An entry as the tuner writes it: a choice, and optionally timings (name -> seconds or None), statuses
    (name -> text), the tuning's seconds and its time. (explain() formats these: a hand-edited or imported
    entry of other types made it fail.)"""
    if not isinstance(entry, dict) or not isinstance(entry.get("choice"), str):
        return False
    timings, status = entry.get("timings", {}), entry.get("status", {})
    return (isinstance(timings, dict) and all(isinstance(k, str) and (t is None or _number(t)) for k, t in timings.items())
            and isinstance(status, dict) and all(isinstance(k, str) and isinstance(t, str) for k, t in status.items())
            and all(entry.get(f) is None or _number(entry[f]) for f in ("tuning_seconds", "when")))


def valid_entries(entries):
    """The well-formed entries of a mapping read from a file (see _valid_entry)."""
    return {k: v for k, v in entries.items() if isinstance(k, str) and _valid_entry(v)}


def _newest(entries, limit, written):
    """`limit` of `entries` (all when there are no more): those being `written` first, then the most recently
    tuned."""
    if len(entries) <= limit:
        return entries
    def rank(item):
        w = item[1].get("when")
        return item[0] in written, w if _number(w) else 0.0
    return dict(sorted(entries.items(), key=rank)[len(entries) - limit:])
