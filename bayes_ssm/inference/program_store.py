"""Compiled programs kept on disk between processes: a warm first forecast skips tracing.

JAX's persistent compilation cache (``jax_compilation_cache_dir``) saves XLA's compilation, but
a new process still traces every program (NumPyro's effect handlers, the Kalman filter's
gradient) and lowers it to MLIR only to compute the cache key: on a warm CLI run that was 7 of
its 26 seconds (``benchmarks/README.md``, "A first forecast in seconds, session 11"). This
store keeps each :func:`~bayes_ssm.inference.threads.locked_jit` program's *executable*
(``jax.experimental.serialize_executable``) under a key computed without tracing, from

- the program (module and name), its static arguments (described by value: each must be a
  plain constant, a tuple of them, or an object with a ``stable_key()`` method, such as
  :class:`~bayes_ssm.inference.engine.ModelKey`, or an optimiser registered with
  :func:`register_static`; anything else and the call runs through ``jax.jit`` as usual),
- the dynamic arguments' tree structure and abstract values (shape, dtype, weak type),
- the environment: the versions of Python, jax, jaxlib, numpyro, optax and numpy, every JAX
  configuration value that is not about caches or logging, ``XLA_FLAGS``, the devices, and a
  hash of the source of every module of ``bayes_ssm`` (any edit of the package makes every
  entry stale).

An entry holds that full description, a SHA-256 of its payload and the payload; it is used
only when the description matches exactly and the checksum holds. Anything else (a stale
entry, a truncated or corrupt file, an executable that does not load) is ignored and
rebuilt: the program is traced and compiled as ``jax.jit`` would (through JAX's own
persistent cache), and the entry written atomically (a temporary file, then
``os.replace``). Entries are pickles, as JAX's own cache entries are: the store directory
must be trusted like that cache.

Off unless a program turns it on (:func:`enable`; the CLI does, beside its compilation cache):
importing ``bayes_ssm`` changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
import tempfile
import threading
from pathlib import Path

__all__ = [
    "enable",
    "disable",
    "directory",
    "register_static",
    "prune",
    "StoredProgram",
    "MISS",
    "MAX_BYTES",
]

FORMAT = b"bayes_ssm program store 1\n"
MISS = object()  # returned by StoredProgram.call when the call must go through jax.jit
# the store's size on disk is kept under this: the least recently used entries go first
MAX_BYTES = 512 * 2**20
UNSTORABLE = b"not serialisable"  # the payload of an entry that sends its program to jax.jit

_STATE: dict = {"dir": None}
_STATIC_NAMES: dict[int, tuple[object, str]] = {}  # id(obj) -> (obj, description)
_LOCK = threading.Lock()
# configuration values that change no program
_IGNORED_CONFIG = ("cache", "log", "dump", "traceback", "pprint", "explain", "mtls")


def enable(path: str | os.PathLike) -> None:
    """Keep compiled programs under ``path`` (created if missing) from now on."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    _STATE["dir"] = path


def disable() -> None:
    """Stop using the store (programs run through ``jax.jit`` again)."""
    _STATE["dir"] = None


def directory() -> Path | None:
    """The store's directory, or None when it is off."""
    return _STATE["dir"]


def register_static(obj: object, description: str) -> object:
    """Describe a static argument that has no ``stable_key()`` (e.g. an optax optimiser built
    from known settings) by ``description``; returns ``obj``. The object is kept alive."""
    _STATIC_NAMES[id(obj)] = (obj, description)
    return obj


class _Unstorable(Exception):
    pass


def _describe(value) -> object:
    """A JSON-able description of a static argument, by value; ``_Unstorable`` if none."""
    named = _STATIC_NAMES.get(id(value))
    if named is not None and named[0] is value:
        return ["registered", named[1]]
    if hasattr(type(value), "stable_key"):
        kind = f"{type(value).__module__}.{type(value).__qualname__}"
        return [kind, value.stable_key()]
    if value is None or type(value) in (bool, int, float, str):
        return [type(value).__name__, repr(value)]
    if type(value) in (tuple, list):  # not a subclass (a named tuple of functions, say)
        return [type(value).__name__, [_describe(v) for v in value]]
    raise _Unstorable(type(value).__name__)


def _source_hash() -> str:
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


_ENV: dict = {}


def _environment() -> str:
    """Everything outside the call that determines a compiled program (see the module
    docstring); the source hash is computed once per process."""
    import importlib.metadata as md

    import jax

    if "static" not in _ENV:
        versions = {}
        for dist in ("jax", "jaxlib", "numpyro", "optax", "numpy"):
            try:
                versions[dist] = md.version(dist)
            except md.PackageNotFoundError:
                versions[dist] = None
        _ENV["static"] = {"python": sys.version, "versions": versions, "source": _source_hash()}
    config = {
        k: repr(v)
        for k, v in sorted(jax.config.values.items())
        if not any(word in k for word in _IGNORED_CONFIG)
    }
    devices = [(d.platform, d.device_kind, d.id) for d in jax.devices()]
    return json.dumps(
        {
            **_ENV["static"],
            "config": config,
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "devices": devices,
            "platform_version": jax.devices()[0].client.platform_version,
        },
        sort_keys=True,
    )


def _effective_flags():
    """The configuration a thread's call runs under that may differ from the global values
    (JAX's configuration contexts are per thread)."""
    from jax._src import config as c

    return (
        c.enable_x64.value,
        c.debug_nans.value,
        c.debug_infs.value,
        str(c.default_matmul_precision.value),
        str(c.numpy_rank_promotion.value),
        str(c.default_device.value),
    )


class StoredProgram:
    """The store's side of one ``locked_jit`` program: :meth:`call` runs the stored (or newly
    stored) executable, or returns :data:`MISS` when the call cannot use the store."""

    def __init__(self, fun, jitted, static_argnames):
        import inspect

        self.name = f"{fun.__module__}.{fun.__qualname__}"
        self.jitted = jitted
        self.params = list(inspect.signature(fun).parameters)
        self.static = frozenset(static_argnames)
        self.loaded: dict = {}  # in-process: (static, tree, avals, flags) -> executable
        self.locks: dict = {}

    def call(self, args, kwargs):
        """The call's result from the stored executable, or :data:`MISS`. The store is an
        optimisation only: anything that goes wrong inside it (JAX's private configuration
        or compiler hooks it reads moved in a new JAX release, a file system error, an
        executable that raises) sends the call to ``jax.jit``, which gives the same answer or
        raises the real error."""
        try:
            return self._call(args, kwargs)
        except Exception:  # noqa: BLE001  (never a failure the plain jax.jit path would not have)
            return MISS

    def _call(self, args, kwargs):
        import jax
        from jax._src import config as c

        if _STATE["dir"] is None or c.disable_jit.value:
            return MISS
        static, dyn_args, dyn_kwargs = [], [], {}
        for i, value in enumerate(args):
            name = self.params[i] if i < len(self.params) else None
            (static.append((name, value)) if name in self.static else dyn_args.append(value))
        for name, value in kwargs.items():
            (static.append((name, value)) if name in self.static else dyn_kwargs.__setitem__(
                name, value))  # fmt: skip
        leaves, tree = jax.tree_util.tree_flatten((tuple(dyn_args), dyn_kwargs))
        if not _on_default_device(leaves):
            return MISS
        # shape, dtype and weak type: what a single-device program is compiled for (whole
        # abstract values can compare unequal on fields that change no program)
        avals = tuple((a.shape, str(a.dtype), a.weak_type) for a in map(jax.typeof, leaves))
        try:
            memo = (tuple(static), tree, avals, _effective_flags())
            hash(memo)
        except TypeError:
            return MISS
        exe = self.loaded.get(memo)
        if exe is None:
            with _LOCK:
                lock = self.locks.setdefault(memo, threading.Lock())
            with lock:
                exe = self.loaded.get(memo)
                if exe is None:
                    exe = self._load_or_build(args, kwargs, static, tree, avals)
                    self.loaded[memo] = exe
        if exe is MISS:
            return MISS
        out = exe(*dyn_args, **dyn_kwargs)
        if out is MISS:  # a stored entry that did not run: jax.jit from now on
            self.loaded[memo] = MISS
        return out

    def _load_or_build(self, args, kwargs, static, tree, avals):
        try:
            described = [[name, _describe(value)] for name, value in static]
        except _Unstorable:
            return MISS
        text = json.dumps(
            {
                "program": self.name,
                "static": described,
                "tree": str(tree),
                "avals": [repr(a) for a in avals],
                "flags": [str(f) for f in _effective_flags()],
                "environment": _environment(),
            },
            sort_keys=True,
        ).encode()
        path = _STATE["dir"] / (hashlib.sha256(text).hexdigest() + ".exe")
        exe = read_entry(path, text, tree)
        if exe is MISS:  # a program XLA could not serialise: jax.jit (and JAX's cache) runs it
            return MISS
        if exe is not None:
            _mark_used(path)
            return _FromDisk(exe, path)
        compiled = fresh_compile(self.jitted.lower(*args, **kwargs))
        if compiled is None or compiled.in_tree != tree:  # not the convention assumed here
            return MISS
        stored = write_entry(path, text, compiled)
        prune(path.parent)
        if not stored:
            return MISS
        return compiled


class _FromDisk:
    """A loaded executable; should its first run fail (an entry that loads but does not run),
    the entry is removed and the call goes through ``jax.jit``."""

    def __init__(self, exe, path):
        self.exe, self.path, self.ran = exe, path, False

    def __call__(self, *args, **kwargs):
        if self.ran:
            return self.exe(*args, **kwargs)
        try:
            out = self.exe(*args, **kwargs)
            import jax

            jax.block_until_ready(out)
        except Exception:  # noqa: BLE001  (jax.jit runs the call again: a real error recurs)
            self.path.unlink(missing_ok=True)
            return MISS
        self.ran = True
        return out


_FRESH = threading.local()


def fresh_compile(lowered):
    """``lowered.compile()`` without JAX's persistent cache, or None where that cannot be
    arranged. An executable that came *from* JAX's cache serialises incompletely on the CPU
    (running it after loading fails: "Function ... not found"); one compiled here does not."""
    from jax._src import compiler

    original = getattr(compiler, "_get_cache_key", None)
    if original is None:
        return None
    if not getattr(original, "bayes_ssm_fresh", False):
        with _LOCK:
            original = compiler._get_cache_key
            if not getattr(original, "bayes_ssm_fresh", False):

                def get_cache_key(*args, **kwargs):  # no key (no cache) inside fresh_compile
                    if getattr(_FRESH, "on", False):
                        return None
                    return original(*args, **kwargs)

                get_cache_key.bayes_ssm_fresh = True
                compiler._get_cache_key = get_cache_key
    _FRESH.on = True
    try:
        return lowered.compile()
    finally:
        _FRESH.on = False


def _device():
    """The device a ``jax.jit`` call of uncommitted arguments runs on (None: a platform name
    only, which the store does not resolve)."""
    import jax
    from jax._src import config as c

    default = c.default_device.value or jax.devices()[0]
    return None if isinstance(default, str) else default


def _on_default_device(leaves) -> bool:
    import jax

    default = _device()
    if default is None:
        return False
    return all(x.sharding.device_set == {default} for x in leaves if isinstance(x, jax.Array))


def read_entry(path: Path, text: bytes, tree):
    """The executable stored at ``path`` if the file is whole, was written for exactly the
    description ``text`` and takes arguments of structure ``tree``; :data:`MISS` if it says
    that this program cannot be stored; else None."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        if not blob.startswith(FORMAT):
            return None
        rest = blob[len(FORMAT) :]
        size = int.from_bytes(rest[:8], "little")
        stored_text, digest, payload = (
            rest[8 : 8 + size],
            rest[8 + size : 40 + size],
            rest[40 + size :],
        )
        if stored_text != text or hashlib.sha256(payload).digest() != digest:
            return None
        if payload == UNSTORABLE:
            return MISS
        from jax._src.lax import linalg
        from jax.experimental.serialize_executable import deserialize_and_load

        # LAPACK's kernels (Cholesky, triangular solves) are registered when a program using
        # them is lowered; a program that was not lowered in this process needs them too
        # (``jax.export`` does the same before it runs a deserialised module)
        linalg.initialize_lapack()
        serialized, in_tree, out_tree = pickle.loads(payload)
        if in_tree != tree:
            return None
        return deserialize_and_load(serialized, in_tree, out_tree, execution_devices=[_device()])
    except Exception:  # noqa: BLE001  (a damaged entry of any kind is rebuilt)
        return None


def write_entry(path: Path, text: bytes, compiled) -> bool:
    """Store ``compiled`` at ``path`` for the description ``text``, atomically; True when it
    was. An executable that XLA cannot serialise (e.g. "`LessThan` is not serializable", a
    sort's comparator on the CPU) is stored as :data:`UNSTORABLE`, so the next process sends
    the program to ``jax.jit`` at once instead of compiling it afresh each time; a failure
    to write leaves no entry (the program still runs)."""
    try:
        from jax.experimental.serialize_executable import serialize

        payload = pickle.dumps(serialize(compiled), protocol=pickle.HIGHEST_PROTOCOL)
        stored = True
    except Exception:  # noqa: BLE001
        payload, stored = UNSTORABLE, False
    try:
        digest = hashlib.sha256(payload).digest()
        blob = b"".join([FORMAT, len(text).to_bytes(8, "little"), text, digest, payload])
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".exe")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(blob)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except Exception:  # noqa: BLE001  (no entry; the next process compiles again)
        return False
    return stored


def _mark_used(path: Path) -> None:
    """Set ``path``'s modification time to now: :func:`prune` removes the least recently used
    entries first."""
    try:
        os.utime(path)
    except OSError:
        pass


def prune(path: str | os.PathLike, max_bytes: int | None = None) -> list[Path]:
    """Remove the least recently used entries (``*.exe``, oldest modification time first)
    until the entries under ``path`` take at most ``max_bytes`` (default :data:`MAX_BYTES`);
    returns the removed paths.
    Only the store's own entries are touched; a file that vanishes meanwhile (another
    process) is skipped. Entries of old package versions or series lengths are never read
    again, so without this the store would only grow."""
    max_bytes = MAX_BYTES if max_bytes is None else max_bytes
    entries = []
    for entry in Path(path).glob("*.exe"):
        try:
            info = entry.stat()
        except OSError:
            continue
        entries.append((info.st_mtime, entry.name, info.st_size, entry))
    total = sum(size for _, _, size, _ in entries)
    removed = []
    for _, _, size, entry in sorted(entries):
        if total <= max_bytes:
            break
        try:
            entry.unlink()
        except OSError:
            continue
        total -= size
        removed.append(entry)
    return removed
