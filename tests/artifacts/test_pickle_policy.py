"""The verdict on imported names: allowlist first, then the denylist, then unknown."""

from __future__ import annotations

import pytest

from mlwarden.artifacts._pickle.policy import Kind, canonical, judge


@pytest.mark.parametrize(
    "name",
    [
        "torch._utils._rebuild_tensor_v2",
        "torch.FloatStorage",
        "torch.bfloat16",
        "collections.OrderedDict",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.dtype",
        "_codecs.encode",
        "joblib.numpy_pickle.NumpyArrayWrapper",
        "scipy.sparse._csr.csr_matrix",
        "sklearn.ensemble._forest.RandomForestClassifier",
        "sklearn.tree._tree.Tree",
        "sklearn.neighbors._kd_tree.newObj",
        "sklearn.decomposition._pca.PCA",
        "torch.nn.modules.linear.Linear",
        "torch.jit._pickle.build_intlist",
    ],
)
def test_framework_names_are_safe(name: str) -> None:
    assert judge(name).kind is Kind.SAFE


@pytest.mark.parametrize(
    ("name", "rule_id"),
    [
        ("os.system", "PKL001"),
        ("posix.system", "PKL001"),
        ("nt.system", "PKL001"),
        ("builtins.eval", "PKL001"),
        ("builtins.__import__", "PKL001"),
        ("subprocess.Popen", "PKL001"),
        ("numpy.testing._private.utils.os.system", "PKL001"),
        ("torch.serialization.os.system", "PKL001"),
        ("numpy.testing._private.utils.subprocess.run", "PKL001"),
        ("pickle.loads", "PKL004"),
        ("_pickle.loads", "PKL004"),
        ("torch.load", "PKL004"),
        ("torch.storage._load_from_bytes", "PKL004"),
        ("numpy.load", "PKL004"),
        ("joblib.load", "PKL004"),
        ("marshal.loads", "PKL005"),
        ("types.CodeType", "PKL005"),
        ("dill._dill._create_code", "PKL005"),
        ("cloudpickle.cloudpickle._make_function", "PKL005"),
        ("object.__subclasses__", "PKL007"),
        ("operator.attrgetter", "PKL007"),
        ("pip._internal.main", "PKL001"),
        ("torch._dynamo.guards.GuardBuilder.get", "PKL001"),
    ],
)
def test_dangerous_names(name: str, rule_id: str) -> None:
    verdict = judge(name)
    assert verdict.kind is Kind.DANGEROUS
    assert verdict.rule_id == rule_id


@pytest.mark.parametrize(
    "name",
    [
        # Classes scikit-learn modules import from dangerous places are not sklearn classes.
        "sklearn.utils._testing.TempMemmap",
        "sklearn.datasets._base.Path",
        "sklearn.utils.NamedTemporaryFile",
        # Names on no list are unknown, never safe.
        "mypackage.Model",
        "sklearn.base.clone.__globals__",
    ],
)
def test_not_safe(name: str) -> None:
    assert judge(name).kind is not Kind.SAFE


def test_python2_module_names_are_mapped() -> None:
    assert canonical("__builtin__", "eval") == "builtins.eval"
    assert canonical("copy_reg", "_reconstructor") == "copyreg._reconstructor"
    assert judge(canonical("__builtin__", "set")).kind is Kind.SAFE


def test_torch_functional_activations_are_safe_but_its_imports_are_not() -> None:
    assert judge("torch.nn.functional.relu").kind is Kind.SAFE
    assert judge("torch.nn.functional.gelu").kind is Kind.SAFE
    assert judge("torch.nn.functional.importlib").kind is Kind.DANGEROUS
    assert judge("torch.nn.functional.importlib.import_module").kind is Kind.DANGEROUS
    assert judge("torch.nn.functional.warnings").kind is not Kind.SAFE


@pytest.mark.parametrize(
    "name",
    [
        # File writers that scikit-learn and torch.nn modules reach through attributes.
        "sklearn.utils.parallel.joblib.PrintTime",
        "joblib.logger.PrintTime",
        "torch.nn.modules._functions.dist.logging.FileHandler",
        "logging.FileHandler",
        "sklearn.utils.parallel.joblib.compressor.BinaryGzipFile",
        "sklearn._min_dependencies.argparse.FileType",
    ],
)
def test_file_writing_constructors_are_dangerous(name: str) -> None:
    assert judge(name, attribute_walk=True).kind is Kind.DANGEROUS
    assert judge(name).kind is Kind.DANGEROUS


def test_the_class_naming_rule_needs_a_direct_module_attribute() -> None:
    # Protocol 4 resolves the dotted name "joblib.Logger" in sklearn.utils.parallel
    # to joblib's class: CamelCase under sklearn. proves nothing once the walk left.
    assert judge("sklearn.utils.parallel.joblib.Logger", attribute_walk=True).kind is Kind.UNKNOWN
    assert judge("sklearn.ensemble._forest.RandomForestClassifier").kind is Kind.SAFE
    assert (
        judge("sklearn.ensemble._forest.RandomForestClassifier", attribute_walk=True).kind
        is Kind.UNKNOWN
    )
    # Exact allowlist entries stay safe however they were reached.
    assert judge("torch._utils._rebuild_tensor_v2", attribute_walk=True).kind is Kind.SAFE


@pytest.mark.parametrize(
    "name",
    [
        # sklearn.externals.array_api_compat.torch does `from torch import *`.
        "sklearn.externals.array_api_compat.torch.FileCheck",
        "sklearn.externals.array_api_compat.torch.ScriptModuleSerializer",
        "sklearn.conftest.DoctestItem",
        "sklearn.utils.tests.test_pprint.Helper",
    ],
)
def test_vendored_and_test_modules_are_not_model_classes(name: str) -> None:
    assert judge(name).kind is not Kind.SAFE
