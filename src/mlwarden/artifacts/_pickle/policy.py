"""Which imported names a pickle may use: the allowlist, the denylist, the verdict.

The order matters and is fail-closed:

1. an exact fully qualified name that real frameworks write (PyTorch, NumPy,
   scikit-learn, joblib, SciPy) is safe;
2. any name whose dotted path, or any suffix of it, reaches a dangerous module or
   callable is dangerous: ``numpy.testing._private.utils.os.system`` resolves to
   ``os.system`` because the module re-exports ``os``;
3. scikit-learn classes are safe by a naming rule (below), minus names that
   scikit-learn modules merely re-export from dangerous places;
4. everything else is unknown, which is suspicious, never clean.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


def _words(text: str) -> list[str]:
    return text.split()


class Kind(enum.Enum):
    SAFE = "safe"
    UNKNOWN = "unknown"
    DANGEROUS = "dangerous"


@dataclass(frozen=True, slots=True, kw_only=True)
class Judgement:
    """The verdict on one imported name; `rule_id` is empty for safe names."""

    kind: Kind
    rule_id: str
    reason: str


# Python 2 module names that the unpickler maps to Python 3 ones (pickle's _compat_pickle).
MODULE_ALIASES: dict[str, str] = {
    "__builtin__": "builtins",
    "copy_reg": "copyreg",
    "cPickle": "pickle",
    "cStringIO": "io",
    "StringIO": "io",
    "commands": "subprocess",
    "urllib2": "urllib.request",
    "httplib": "http.client",
    "SocketServer": "socketserver",
    "Tkinter": "tkinter",
    "thread": "_thread",
    "exceptions": "builtins",
}

_TORCH_STORAGES = _words(
    "Double Float Half BFloat16 Long Int Short Char Byte Bool ComplexDouble ComplexFloat "
    "QUInt8 QInt8 QInt32 QUInt4x2 QUInt2x4 Untyped"
)
_TORCH_DTYPES = _words(
    "float32 float float64 double float16 half bfloat16 complex32 complex64 cfloat complex128 "
    "cdouble uint8 uint16 uint32 uint64 int8 int16 short int32 int int64 long bool qint8 quint8 "
    "qint32 quint4x2 quint2x4 float8_e4m3fn float8_e5m2 float8_e4m3fnuz float8_e5m2fnuz "
    "float8_e8m0fnu float4_e2m1fn_x2 bits8 bits16 bits1x8 bits2x4 bits4x2"
)
_TORCH_EXACT = (
    "torch._utils._rebuild_tensor",
    "torch._utils._rebuild_tensor_v2",
    "torch._utils._rebuild_tensor_v3",
    "torch._utils._rebuild_parameter",
    "torch._utils._rebuild_parameter_with_state",
    "torch._utils._rebuild_qtensor",
    "torch._utils._rebuild_sparse_tensor",
    "torch._utils._rebuild_nested_tensor",
    "torch._utils._rebuild_wrapper_subclass",
    "torch._utils._rebuild_device_tensor_from_numpy",
    "torch._utils._rebuild_meta_tensor_no_storage",
    "torch._tensor._rebuild_from_type_v2",
    "torch._tensor._rebuild_from_type",
    "torch.Tensor",
    "torch.nn.parameter.Parameter",
    "torch.nn.parameter.Buffer",
    "torch.Size",
    "torch.device",
    "torch.dtype",
    "torch.layout",
    "torch.memory_format",
    "torch.strided",
    "torch.sparse_coo",
    "torch.sparse_csr",
    "torch.sparse_csc",
    "torch.sparse_bsr",
    "torch.sparse_bsc",
    "torch._mkldnn",
    "torch.contiguous_format",
    "torch.channels_last",
    "torch.channels_last_3d",
    "torch.preserve_format",
    "torch.per_tensor_affine",
    "torch.per_channel_affine",
    "torch.per_tensor_symmetric",
    "torch.per_channel_symmetric",
    "torch.per_channel_affine_float_qparams",
    "torch.serialization._get_layout",
    # TorchScript's own pickles rebuild lists and type tags with these helpers.
    "torch.jit._pickle.build_intlist",
    "torch.jit._pickle.build_tensorlist",
    "torch.jit._pickle.build_doublelist",
    "torch.jit._pickle.build_boollist",
    "torch.jit._pickle.build_tensor_from_id",
    "torch.jit._pickle.restore_type_tag",
    "torch.storage.TypedStorage",
    "torch.storage.UntypedStorage",
    "torch.UntypedStorage",
    "torch.TypedStorage",
)
_NUMPY_EXACT = (
    *(
        f"{core}.{name}"
        for core in ("numpy.core.multiarray", "numpy._core.multiarray")
        for name in ("_reconstruct", "scalar")
    ),
    "numpy.ndarray",
    "numpy.dtype",
    "numpy.matrix",
    "numpy.ma.core.MaskedArray",
    "numpy.ma.MaskedArray",
    "numpy.ma.core._mareconstruct",
    "numpy.core.numeric._frombuffer",
    "numpy._core.numeric._frombuffer",
    "numpy.random._pickle.__randomstate_ctor",
    "numpy.random._pickle.__generator_ctor",
    "numpy.random._pickle.__bit_generator_ctor",
    "numpy.random.mtrand.RandomState",
    "numpy.random._generator.Generator",
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random._pcg64.PCG64DXSM",
    "numpy.random._philox.Philox",
    "numpy.random._sfc64.SFC64",
    "numpy.random.bit_generator.SeedSequence",
    "numpy.random.bit_generator.__pyx_unpickle_SeedSequence",
    "numpy.random.mtrand.__pyx_unpickle_RandomState",
)
# NumPy scalar types and the element-wise math functions users hand to transformers
# (FunctionTransformer(np.log1p)): pure computations on arrays.
_NUMPY_NAMES = _words(
    "bool_ int8 int16 int32 int64 uint8 uint16 uint32 uint64 float16 float32 float64 "
    "longdouble complex64 complex128 str_ bytes_ void object_ datetime64 timedelta64 intc intp "
    "log log1p log2 log10 exp exp2 expm1 sqrt square abs absolute negative sign sin cos tan "
    "arcsin arccos arctan tanh sinh cosh floor ceil rint round clip maximum minimum add subtract "
    "multiply divide true_divide power mean median sum prod std var nanmean nanmedian nansum "
    "reciprocal cbrt isnan isfinite"
)
_PYTHON_EXACT = (
    "collections.OrderedDict",
    "collections.defaultdict",
    "collections.Counter",
    "collections.deque",
    "builtins.set",
    "builtins.frozenset",
    "builtins.slice",
    "builtins.complex",
    "builtins.bytearray",
    "builtins.bytes",
    "builtins.range",
    "builtins.dict",
    "builtins.list",
    "builtins.tuple",
    "builtins.int",
    "builtins.float",
    "builtins.bool",
    "builtins.str",
    "builtins.object",
    "builtins.NotImplemented",
    "builtins.Ellipsis",
    "copyreg._reconstructor",
    "copyreg.__newobj__",
    "copyreg.__newobj_ex__",
    "_codecs.encode",
    "codecs.encode",
    "datetime.datetime",
    "datetime.date",
    "datetime.time",
    "datetime.timedelta",
    "datetime.timezone",
    "decimal.Decimal",
    "fractions.Fraction",
    "uuid.UUID",
    "functools.partial",
    "io.BytesIO",
    "_io.BytesIO",
    "re._compile",
    "enum.Enum",
    "argparse.Namespace",
    "types.SimpleNamespace",
)
_OTHER_EXACT = (
    # BisectingKMeans keeps the k-means iteration it runs (self._kmeans_single_func):
    # pure NumPy/Cython loops over the arrays they are given.
    "sklearn.cluster._kmeans._kmeans_single_lloyd",
    "sklearn.cluster._kmeans._kmeans_single_elkan",
    "joblib.numpy_pickle.NumpyArrayWrapper",
    "joblib.numpy_pickle_compat.NDArrayWrapper",
    "joblib.numpy_pickle_compat.ZNDArrayWrapper",
    "scipy.interpolate._bsplines.BSpline",
    "scipy._lib.array_api_compat.numpy._aliases.asarray",
    "scipy.stats._distn_infrastructure.rv_continuous_frozen",
    "scipy.stats._distn_infrastructure.rv_discrete_frozen",
    # SciPy sparse matrices, in their private and their public modules.
    *(
        f"scipy.sparse.{mod}{kind}_{suffix}"
        for kind in ("csr", "csc", "coo", "lil", "dok", "bsr", "dia")
        for mod in (f"_{kind}.", f"{kind}.", "")
        for suffix in ("matrix", "array")
    ),
)
SAFE_EXACT: frozenset[str] = frozenset(
    (
        *_TORCH_EXACT,
        *(f"torch.{kind}Storage" for kind in _TORCH_STORAGES),
        *(f"torch.{dtype}" for dtype in _TORCH_DTYPES),
        *_NUMPY_EXACT,
        *(f"numpy.{name}" for name in _NUMPY_NAMES),
        *_PYTHON_EXACT,
        *_OTHER_EXACT,
    )
)

# --- dangerous ----------------------------------------------------------------------

_MODULES_EXEC = _words(
    # processes, the interpreter, module loading
    "os posix nt posixpath ntpath genericpath subprocess _posixsubprocess sys pty importlib "
    "runpy imp zipimport pkgutil site sysconfig signal resource fcntl termios _winapi msvcrt "
    "winreg _winreg ctypes _ctypes cffi gc inspect threading _thread multiprocessing "
    "concurrent asyncio _asyncio sched atexit "
    # debuggers, shells, code evaluation helpers
    "pdb bdb code codeop timeit cProfile profile trace tracemalloc pydoc doctest unittest "
    "idlelib tkinter turtle IPython "
    # files and the file system
    "shutil tempfile glob fnmatch pathlib fileinput linecache shelve dbm sqlite3 mmap tarfile "
    "zipfile filecmp logging.config logging.handlers "
    # the network
    "socket _socket socketserver ssl select selectors http urllib urllib3 requests httpx "
    "aiohttp ftplib smtplib poplib imaplib nntplib telnetlib webbrowser xmlrpc wsgiref "
    "paramiko "
    # packaging and environments
    "distutils setuptools pip _pip pkg_resources venv ensurepip"
)
_MODULES_NESTED = _words("pickle _pickle dill cloudpickle jsonpickle shelve yaml")
_EXACT_EXEC = _words(
    "eval exec compile open __import__ breakpoint input execfile file reload globals locals "
    "vars setattr delattr getattr help exit quit copyright credits license"
)
DANGEROUS_EXACT: dict[str, str] = {
    **{f"builtins.{name}": "PKL001" for name in _EXACT_EXEC},
    "io.open": "PKL001",
    "io.open_code": "PKL001",
    "io.FileIO": "PKL001",
    "_io.open": "PKL001",
    "_io.open_code": "PKL001",
    "_io.FileIO": "PKL001",
    "codecs.open": "PKL001",
    "gzip.open": "PKL001",
    "gzip.GzipFile": "PKL001",
    "bz2.open": "PKL001",
    "bz2.BZ2File": "PKL001",
    "lzma.open": "PKL001",
    "lzma.LZMAFile": "PKL001",
    "platform.popen": "PKL001",
    "platform._syscmd_ver": "PKL001",
    "platform._syscmd_file": "PKL001",
    "uuid._get_command_stdout": "PKL001",
    "pydoc.pipepager": "PKL001",
    "operator.attrgetter": "PKL007",
    "operator.methodcaller": "PKL001",
    "_operator.attrgetter": "PKL007",
    "_operator.methodcaller": "PKL001",
    "functools.reduce": "PKL001",
    "_functools.reduce": "PKL001",
    "builtins.type": "PKL001",
    "builtins.super": "PKL001",
    "builtins.classmethod": "PKL001",
    "builtins.staticmethod": "PKL001",
    "builtins.property": "PKL001",
    "builtins.memoryview": "PKL002",
    "builtins.object.__getattribute__": "PKL007",
    "builtins.object.__subclasses__": "PKL007",
    "joblib.memory.Memory": "PKL001",
    "joblib.Memory": "PKL001",
    # Constructors that create or truncate the file they are given, and process pools.
    "logging.FileHandler": "PKL001",
    "argparse.FileType": "PKL001",
    "logging.basicConfig": "PKL001",
    "joblib.logger": "PKL001",
    "joblib.PrintTime": "PKL001",
    "joblib.compressor": "PKL001",
    "joblib.executor": "PKL001",
    "joblib.pool": "PKL001",
    "joblib.memory": "PKL001",
    # Loaders of nested payloads: the loaded bytes run code of their own.
    "marshal.loads": "PKL005",
    "marshal.load": "PKL005",
    "types.CodeType": "PKL005",
    "types.FunctionType": "PKL005",
    "types.LambdaType": "PKL005",
    "types.MethodType": "PKL005",
    "types.ModuleType": "PKL001",
    "torch.load": "PKL004",
    "torch.serialization.load": "PKL004",
    "torch.serialization._load": "PKL004",
    "torch.storage._load_from_bytes": "PKL004",
    "torch.jit.load": "PKL004",
    "torch.jit._serialization.load": "PKL004",
    "torch.jit._script.RecursiveScriptModule": "PKL001",
    "torch.hub.load": "PKL001",
    "torch.hub.load_state_dict_from_url": "PKL004",
    "torch.hub.download_url_to_file": "PKL001",
    "torch.package.PackageImporter": "PKL004",
    "torch._C.import_ir_module": "PKL004",
    "torch._C._load_for_lite_interpreter": "PKL004",
    "torch.utils.cpp_extension": "PKL001",
    # Published scanner bypasses: framework functions that eval, exec, unpickle or spawn.
    "torch.utils._config_module": "PKL004",
    "torch._dynamo": "PKL001",
    "torch.fx.experimental.symbolic_shapes": "PKL001",
    "torch.fx.graph_module.reduce_graph_module": "PKL005",
    "torch.fx.graph_module.reduce_package_graph_module": "PKL005",
    "torch.fx.graph_module.reduce_deploy_graph_module": "PKL005",
    "torch.fx.graph_module._deserialize_graph_module": "PKL005",
    "torch.fx.graph_module._exec_with_source": "PKL005",
    "torch.jit.unsupported_tensor_ops": "PKL001",
    "torch._inductor": "PKL001",
    "torch.utils.bottleneck": "PKL001",
    "torch.testing._internal": "PKL001",
    "torch.distributed.rpc": "PKL001",
    "torch.hub": "PKL001",
    "torch.multiprocessing": "PKL001",
    "torch._export": "PKL004",
    "torch.export.load": "PKL004",
    "lib2to3": "PKL001",
    "lib2to3.pgen2.grammar.Grammar.loads": "PKL004",
    "lib2to3.pgen2.grammar.Grammar.load": "PKL004",
    "keras.utils.python_utils.func_load": "PKL005",
    "keras.src.utils.python_utils.func_load": "PKL005",
    "torch.utils.cpp_extension.load_inline": "PKL001",
    "torch.ops.load_library": "PKL001",
    "torch._ops.load_library": "PKL001",
    "torch.classes.load_library": "PKL001",
    "numpy.load": "PKL004",
    "numpy.loads": "PKL004",
    "numpy.fromfile": "PKL001",
    "numpy.tofile": "PKL001",
    "numpy.save": "PKL001",
    "numpy.savez": "PKL001",
    "numpy.savetxt": "PKL001",
    "numpy.loadtxt": "PKL001",
    "numpy.genfromtxt": "PKL001",
    "numpy.memmap": "PKL001",
    "numpy.ctypeslib": "PKL001",
    "numpy.f2py": "PKL001",
    "numpy.distutils": "PKL001",
    "numpy.testing": "PKL001",
    "numpy.lib.npyio": "PKL004",
    "numpy.lib._npyio_impl": "PKL004",
    "numpy.lib.format.read_array": "PKL004",
    "numpy.DataSource": "PKL001",
    "numpy.lib._datasource": "PKL001",
    "joblib.load": "PKL004",
    "joblib.numpy_pickle.load": "PKL004",
    "joblib.dump": "PKL001",
    "joblib.numpy_pickle.dump": "PKL001",
    "joblib.Parallel": "PKL001",
    "joblib.parallel": "PKL001",
    "joblib._parallel_backends": "PKL001",
    "joblib.externals": "PKL001",
    "keras.models.load_model": "PKL004",
    "keras.saving.load_model": "PKL004",
    "keras.src.saving": "PKL004",
    "keras.layers.Lambda": "PKL005",
    "keras.src.layers.core.lambda_layer.Lambda": "PKL005",
    "tensorflow.keras.models.load_model": "PKL004",
    "tensorflow.saved_model.load": "PKL004",
    "tensorflow.io": "PKL001",
    "tensorflow.py_function": "PKL001",
    "tensorflow.numpy_function": "PKL001",
    "tensorflow.compat.v1.py_func": "PKL001",
    "tensorflow.python.ops.script_ops": "PKL001",
    "pandas.read_pickle": "PKL004",
    "pandas.io.pickle": "PKL004",
    "pandas.read_csv": "PKL001",
    "scipy.io": "PKL001",
    "sklearn.externals.joblib": "PKL004",
    "sklearn.utils._testing": "PKL001",
    "sklearn.datasets": "PKL001",
    "jinja2.Template": "PKL001",
    "jinja2.Environment": "PKL001",
    "jinja2.environment": "PKL001",
}
for _module in _MODULES_EXEC:
    DANGEROUS_EXACT.setdefault(_module, "PKL001")
for _module in _MODULES_NESTED:
    DANGEROUS_EXACT.setdefault(_module, "PKL004")
# dill and cloudpickle rebuild functions from their code (code by value); their other
# helpers are only needed by such pickles, so every one of their names is code by value.
for _module in ("dill", "cloudpickle", "srsly.cloudpickle", "joblib.externals.cloudpickle"):
    DANGEROUS_EXACT[_module] = "PKL005"

# Dangerous modules that other modules re-export (numpy.testing._private.utils.os) and
# that no framework names a submodule after.
REEXPORTED_MODULES = frozenset(
    _words(
        "os posix nt subprocess _posixsubprocess sys builtins socket pty shutil importlib "
        "runpy ctypes _ctypes marshal webbrowser pdb cProfile timeit pickle dill cloudpickle "
        "multiprocessing tempfile pathlib urllib requests"
    )
)

# Names dangerous wherever they are found: their last component alone says enough.
DANGEROUS_LEAVES: dict[str, str] = {
    "system": "PKL001",
    "popen": "PKL001",
    "Popen": "PKL001",
    "execv": "PKL001",
    "execve": "PKL001",
    "execl": "PKL001",
    "execvp": "PKL001",
    "spawnv": "PKL001",
    "spawnl": "PKL001",
    "posix_spawn": "PKL001",
    "check_output": "PKL001",
    "check_call": "PKL001",
    "getoutput": "PKL001",
    "getstatusoutput": "PKL001",
    "eval": "PKL001",
    "exec": "PKL001",
    "execfile": "PKL001",
    "__import__": "PKL001",
    "import_module": "PKL001",
    "__builtins__": "PKL007",
    "__globals__": "PKL007",
    "__subclasses__": "PKL007",
    "__getattribute__": "PKL007",
    "__getattr__": "PKL007",
    "__dict__": "PKL007",
    "__class__": "PKL007",
    "__base__": "PKL007",
    "__bases__": "PKL007",
    "__mro__": "PKL007",
    "__code__": "PKL007",
    "__closure__": "PKL007",
    "__func__": "PKL007",
    "__self__": "PKL007",
    "__module__": "PKL007",
    "__loader__": "PKL007",
    "__spec__": "PKL007",
    "__init__": "PKL007",
    "__call__": "PKL007",
    "__reduce__": "PKL007",
    "__reduce_ex__": "PKL007",
    "__setstate__": "PKL007",
    "__getstate__": "PKL007",
    "__setattr__": "PKL007",
    "__delattr__": "PKL007",
    "__getitem__": "PKL007",
    "__setitem__": "PKL007",
    "__new__": "PKL007",
    "func_globals": "PKL007",
    "f_globals": "PKL007",
    "f_builtins": "PKL007",
    "f_locals": "PKL007",
    "gi_frame": "PKL007",
    "tb_frame": "PKL007",
    "f_back": "PKL007",
}

# Classes that scikit-learn modules import from dangerous places; the naming rule
# below would otherwise accept them as scikit-learn classes.
_SKLEARN_REEXPORTS = frozenset(
    _words(
        "Client Listener Connection NamedTemporaryFile TemporaryDirectory TemporaryFile "
        "SpooledTemporaryFile Path PosixPath WindowsPath PurePath PurePosixPath Thread Timer "
        "Memory Request Popen CompletedProcess CalledProcessError GzipFile BZ2File LZMAFile "
        "ZipFile TarFile Progress FunctionType MethodType ModuleType CodeType LambdaType "
        "BuiltinFunctionType Parameter Pool Process Manager ThreadPoolExecutor "
        "ProcessPoolExecutor Queue PyTorchFileReader PyTorchFileWriter CompilationUnit "
        "ScriptFunction ScriptModule ScriptMethod ScriptObject LiteScriptModule "
        "ThreadpoolController Parallel SkipTest BytesIO StringIO FileIO TextIOWrapper"
    )
)
# Packages whose classes are model parts: scikit-learn estimators, PyTorch modules and
# optimizers (a whole `torch.save(model)`).
CLASS_NAMESPACES = ("sklearn.", "torch.nn.modules.", "torch.optim.")
# scikit-learn's own classes: CamelCase (optionally private, "_CFNode"), plus the helpers
# its Cython extension types pickle through ("newObj", "__pyx_unpickle_Tree").
_SKLEARN_CLASS = re.compile(r"_?[A-Z][A-Za-z0-9_]*")
_SKLEARN_HELPER = re.compile(r"newObj|__pyx_unpickle_[A-Za-z0-9_]+")
# Score and metric functions that estimators keep as parameters (SelectKBest(f_classif)).
_SKLEARN_FUNCTIONS = frozenset(
    _words(
        "f_classif f_regression chi2 r_regression f_oneway mutual_info_classif "
        "mutual_info_regression"
    )
)
# scikit-learn modules that are other projects' code: vendored libraries and array API
# shims (sklearn.externals.array_api_compat.torch re-exports all of torch), test code.
_FOREIGN_NAMESPACES = ("sklearn.externals.",)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FUNCTION = re.compile(r"[a-z][a-z0-9_]*")
_FUNCTIONAL_REEXPORTS = frozenset(_words("dataclasses importlib math warnings torch np grad"))


def canonical(module: str, name: str) -> str:
    """The fully qualified name an unpickler resolves for GLOBAL module/name."""
    module = MODULE_ALIASES.get(module, module)
    return f"{module}.{name}" if name else module


def _dangerous_rule(full: str) -> tuple[str, str] | None:
    """The rule and the dangerous name reached, for `full` or any suffix of it."""
    parts = full.split(".")
    for part in parts[1:]:
        if part in DANGEROUS_LEAVES:
            return DANGEROUS_LEAVES[part], part
    for start in range(len(parts)):
        suffix_parts = parts[start:]
        head = MODULE_ALIASES.get(suffix_parts[0], suffix_parts[0])
        # Inside a longer path, a bare module name only counts when no framework would
        # name its own submodule so (torch.jit._pickle is not the _pickle module); a
        # module.attribute pair (io.open, types.FunctionType) counts anywhere.
        shortest = 1 if start == 0 or head in REEXPORTED_MODULES else 2
        for stop in range(len(suffix_parts), shortest - 1, -1):
            candidate = ".".join((head, *suffix_parts[1:stop]))
            rule = DANGEROUS_EXACT.get(candidate)
            if rule is not None:
                return rule, candidate
    return None


def _sklearn_rule(full: str) -> bool:
    module, _, name = full.rpartition(".")
    if (
        module.startswith(_FOREIGN_NAMESPACES)
        or ".tests." in f"{module}."
        or (module.endswith(".conftest"))
    ):
        return False
    if module == "torch.nn.functional":
        # Activation functions that whole-module pickles keep (TransformerEncoderLayer).
        return bool(_FUNCTION.fullmatch(name)) and name not in _FUNCTIONAL_REEXPORTS
    if not module.startswith(CLASS_NAMESPACES) or name in _SKLEARN_REEXPORTS:
        return False
    if not all(_IDENTIFIER.fullmatch(part) for part in module.split(".")):
        return False
    return bool(
        _SKLEARN_CLASS.fullmatch(name)
        or _SKLEARN_HELPER.fullmatch(name)
        or name in _SKLEARN_FUNCTIONS
    )


def is_attribute_walk(name: str) -> bool:
    """A dotted imported name: the unpickler walks attributes from the module it imports.

    Protocol 4 resolves `sklearn.utils.parallel` + `joblib.PrintTime` to
    joblib.logger.PrintTime, a class that writes files; the walk can leave the module
    through any module it imported, so names reached so are never model classes.
    """
    return "." in name


def judge(full: str, *, attribute_walk: bool = False) -> Judgement:
    """Classify one fully qualified imported name.

    `attribute_walk` says the imported name had dots (see `is_attribute_walk`): the
    naming rule for framework classes then does not apply, only the exact allowlist.
    """
    if full in SAFE_EXACT:
        return Judgement(kind=Kind.SAFE, rule_id="", reason="on the framework allowlist")
    danger = _dangerous_rule(full)
    if danger is not None:
        rule_id, reached = danger
        return Judgement(kind=Kind.DANGEROUS, rule_id=rule_id, reason=f"reaches {reached}")
    if _sklearn_rule(full):
        if attribute_walk:
            return Judgement(
                kind=Kind.UNKNOWN,
                rule_id="PKL002",
                reason="a framework-looking class reached by an attribute walk",
            )
        return Judgement(kind=Kind.SAFE, rule_id="", reason="a framework model class")
    return Judgement(kind=Kind.UNKNOWN, rule_id="PKL002", reason="not on any allowlist")


def is_dangerous_attribute(name: str) -> bool:
    """Attribute names that lead from any object to code (dunders, frames, globals)."""
    return DANGEROUS_LEAVES.get(name) == "PKL007" or (name.startswith("__") and name.endswith("__"))
