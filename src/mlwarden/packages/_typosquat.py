"""Likely typosquats of popular ML and data packages.

A name is a likely typosquat when it is not itself a popular or known-legitimate
package and it is a near miss of a popular one: the same letters once separators
are dropped and look-alike digits read as letters (``tensorfl0w``, ``scikitlearn``),
the popular name with a decorative prefix or suffix (``py-torch``, ``numpy-python``),
or a Damerau-Levenshtein distance of 1 (names of 5 to 11 letters) or 2 (12 and
more): one typo, a swapped pair. Short names are left alone: at four letters every
edit lands on some real, unrelated package.

The allowlist holds real packages that sit close to a popular name (``torchvision``
is not a typo of ``torch``, ``scapy`` not of ``scipy``). A false positive is fixed by
adding to it, never by loosening the distance.
"""

from __future__ import annotations

from dataclasses import dataclass

from packaging.utils import canonicalize_name

POPULAR: frozenset[str] = frozenset(
    {
        # frameworks and their runtimes
        "torch", "torchvision", "torchaudio", "torchtext", "torchdata", "torchmetrics",
        "pytorch-lightning", "lightning", "tensorflow", "tensorflow-gpu", "tensorflow-cpu",
        "tensorflow-hub", "tensorflow-datasets", "tensorflow-probability", "tensorflow-text",
        "tensorflow-io", "tensorflow-addons", "tensorboard", "tf-keras", "keras", "keras-nlp",
        "keras-cv", "keras-hub", "jax", "jaxlib", "flax", "optax", "paddlepaddle", "mxnet",
        "onnx", "onnxruntime", "onnxruntime-gpu", "onnxscript", "openvino", "tensorrt",
        "triton", "deepspeed", "horovod", "fairscale", "xformers", "bitsandbytes",
        # hugging face and LLM tooling
        "transformers", "datasets", "tokenizers", "accelerate", "huggingface-hub",
        "safetensors", "diffusers", "peft", "trl", "evaluate", "sentence-transformers",
        "sentencepiece", "tiktoken", "vllm", "langchain", "langchain-core",
        "langchain-community", "langchain-openai", "llama-index", "openai", "anthropic",
        "cohere", "gradio", "streamlit", "einops", "timm", "optimum", "auto-gptq",
        "llama-cpp-python", "ctransformers", "instructor", "guidance", "chromadb",
        "faiss-cpu", "faiss-gpu", "pinecone-client", "weaviate-client", "qdrant-client",
        # classical ML and numerics
        "numpy", "scipy", "pandas", "polars", "pyarrow", "scikit-learn", "scikit-image",
        "statsmodels", "xgboost", "lightgbm", "catboost", "sympy", "numba", "cupy",
        "numexpr", "joblib", "threadpoolctl", "dask", "distributed", "ray", "modin", "vaex",
        "h5py", "tables", "zarr", "netcdf4", "xarray", "imbalanced-learn", "category-encoders",
        "shap", "lime", "optuna", "hyperopt", "scikit-optimize", "bayesian-optimization",
        "prophet", "sktime", "pmdarima", "tsfresh", "networkx", "igraph", "umap-learn",
        "hdbscan", "pynndescent", "annoy", "hnswlib",
        # data, vision, text, audio
        "matplotlib", "seaborn", "plotly", "bokeh", "altair", "pillow", "opencv-python",
        "opencv-contrib-python", "opencv-python-headless", "imageio", "albumentations",
        "kornia", "nltk", "spacy", "gensim", "textblob", "librosa", "soundfile", "pydub",
        "jieba", "rapidfuzz", "regex", "ftfy", "unidecode", "beautifulsoup4", "lxml",
        # MLOps and notebooks
        "mlflow", "wandb", "comet-ml", "neptune-client", "clearml", "dvc", "bentoml",
        "kserve", "seldon-core", "fastapi", "uvicorn", "pydantic", "jupyter", "jupyterlab",
        "notebook", "ipykernel", "ipython", "ipywidgets", "tqdm", "rich", "click",
        "requests", "boto3", "protobuf", "grpcio", "pyyaml", "cloudpickle", "dill",
        "fsspec", "s3fs", "gcsfs",
    }
)  # fmt: skip

# Real, well-known packages whose names sit close to a popular one.
KNOWN_LEGITIMATE: frozenset[str] = frozenset(
    {
        "pytorch", "sklearn", "tensorflow-intel", "tensorflow-macos", "tensorflow-metal",
        "tensorflow-estimator", "tensorflow-serving-api", "tensorboardx", "tensorboard-data-server",
        "tensorboard-plugin-wit", "tf-nightly", "tf-estimator-nightly", "keras-preprocessing",
        "keras-applications", "keras-tuner", "keras-core", "torchx", "torchserve",
        "torchao", "torchtune", "torchrec", "pytorch-triton", "triton-nightly", "torch-geometric",
        "torch-scatter", "torch-sparse", "jaxtyping", "flaxformer", "optree",
        "onnxconverter-common",
        "onnxmltools", "onnx-simplifier", "onnxsim", "onnxruntime-training", "onnxruntime-directml",
        "onnxruntime-openvino", "onnxruntime-extensions", "onnx-graphsurgeon", "tf2onnx",
        "transformers-stream-generator", "dataset", "datasets-server", "tokenizer", "evaluator",
        "openai-whisper", "anthropic-bedrock", "gradio-client", "langsmith", "langgraph",
        "langchain-text-splitters", "langchain-anthropic", "langchain-experimental",
        "numpy-financial", "numpydoc", "numpy-quaternion", "scipy-stubs", "pandas-stubs",
        "pandas-gbq", "pandasql", "pandera", "polars-lts-cpu", "pyarrow-hotfix",
        "scikit-build", "scikit-build-core", "scikit-learn-intelex", "scikit-fuzzy", "scapy",
        "simpy", "sympy", "numbat", "cupy-cuda11x", "cupy-cuda12x", "dask-ml", "daskms",
        "rayon", "raylib", "table", "tablib", "zarr-python", "xarray-einstats", "shapely",
        "shap-hypetune", "slime", "limes", "optuna-dashboard", "hyperopt-sklearn", "prophecy",
        "networkx-stubs", "igraph-stubs", "python-igraph", "annoy-fixed", "matplotlib-inline",
        "matplotlib-venn", "seaborn-image", "plotly-express", "bokeh-sampledata", "altair-viewer",
        "pillow-heif", "pillow-avif-plugin", "imageio-ffmpeg", "kornia-rs", "nltk-data",
        "spacy-legacy", "spacy-loggers", "spacy-transformers", "librosa-stubs", "soundfile-stubs",
        "pydub-stubs",
        "regex2", "ftfy-stubs", "lxml-stubs", "lxml-html-clean", "mlflow-skinny", "mlflow-tracing",
        "wand", "wandb-core", "comet-llm", "clearml-agent", "dvc-data", "dvc-objects",
        "fastapi-cli", "fastapi-slim", "uvicorn-worker", "pydantic-core", "pydantic-settings",
        "pydantic-extra-types", "jupyter-core", "jupyter-client", "jupyter-server",
        "jupyterlab-server", "jupyterlab-widgets", "jupyterlab-pygments", "notebook-shim",
        "ipython-genutils", "ipython-pygments-lexers", "tqdm-joblib", "rich-click", "click-plugins",
        "click-didyoumean", "click-repl", "click-option-group", "requests-oauthlib",
        "requests-toolbelt", "requests-mock", "requests-file", "boto3-stubs", "botocore",
        "protobuf3", "grpcio-tools", "grpcio-status", "grpcio-health-checking", "types-pyyaml",
        "yaml", "pyyaml-include", "fsspec-xrootd", "s3fs-fuse", "joblibspark", "types-requests",
        "types-protobuf", "rich-argparse", "click-log", "flask", "flake8", "trio", "tables-io",
        "lime-ml", "pyray", "raydp", "types-tqdm", "tqdm-multiprocess", "keras-rl", "keras2onnx",
        "tensorflow-model-optimization", "tensorflow-serving", "tf-agents", "tf-models-official",
        "numpy-groupies", "numpy-stl", "distro", "distlib", "threadpool", "pyarrow-stubs",
        "polars-u64-idx", "cohere-aws", "opencv-python-rolling", "datasette", "sentry-sdk",
        "triton-client", "tritonclient", "pdb-attach", "deepspeed-kernels", "bitsandbytes-cuda",
        "peft-lora", "timm-stubs", "openvino-dev", "openvino-telemetry", "streamlit-aggrid",
        "gradio-pdf", "einops-exts", "lightning-utilities", "lightning-cloud", "ipykernel-stubs",
        "graphviz", "pygraphviz", "regexp", "lxml-html", "dvclive", "bento", "raylet",
        # near misses found among the 15,000 most downloaded PyPI packages
        "boto", "pyaml", "tokenize-rt", "spython", "x-transformers", "itables", "willow",
        "unicorn", "bpython", "grequests", "fastai", "rjieba", "ngboost", "beautifulsoup",
        "scipp", "pymantic", "retworkx", "distribute", "xoto3", "jaxlie", "crick", "dydantic",
        "tensorflowjs", "langchain-cohere",
    }
)  # fmt: skip

_PREFIXES = ("py-", "py", "python-", "python3-", "pip-")
_SUFFIXES = ("-python", "-py", "py", "-python3", "-lib", "-pkg", "-official")
_HOMOGLYPHS = str.maketrans({"0": "o", "1": "l", "3": "e", "5": "s", "|": "l"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Typosquat:
    """The popular package a name imitates, and how."""

    target: str
    how: str


def _skeleton(name: str) -> str:
    """The name without separators and with look-alike digits read as letters."""
    return name.translate(_HOMOGLYPHS).replace("-", "").replace("_", "").replace(".", "")


_POPULAR_CANONICAL = frozenset(canonicalize_name(p) for p in POPULAR)
_LEGITIMATE_CANONICAL = frozenset(canonicalize_name(p) for p in KNOWN_LEGITIMATE)
_BY_SKELETON: dict[str, str] = {_skeleton(p): p for p in sorted(_POPULAR_CANONICAL)}


def _distance(a: str, b: str, limit: int) -> int:
    """Damerau-Levenshtein distance (optimal string alignment), stopping above `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        if min(current) > limit:
            return limit + 1
        previous2, previous = previous, current
    return previous[len(b)]


def _allowed_distance(target: str) -> int:
    # Two edits only for long names: below 12 letters they reach too many real packages
    # (jupyterhub/jupyterlab, torchtnt/torchtext were the measured cases).
    length = len(_skeleton(target))
    if length < 5:
        return 0
    return 1 if length < 12 else 2


def find_typosquat(name: str) -> Typosquat | None:
    """The popular package `name` likely imitates, or None."""
    canonical = canonicalize_name(name)
    if not canonical or canonical in _POPULAR_CANONICAL or canonical in _LEGITIMATE_CANONICAL:
        return None
    skeleton = _skeleton(canonical)
    if skeleton in _BY_SKELETON:
        return Typosquat(
            target=_BY_SKELETON[skeleton],
            how="same letters with changed separators or look-alike characters",
        )
    for target in sorted(_POPULAR_CANONICAL):
        if len(target) < 4:
            continue
        for prefix in _PREFIXES:
            if canonical == prefix + target:
                return Typosquat(target=target, how=f"the name with an added prefix {prefix!r}")
        for suffix in _SUFFIXES:
            if canonical == target + suffix:
                return Typosquat(target=target, how=f"the name with an added suffix {suffix!r}")
    best: tuple[int, str] | None = None
    for target in sorted(_POPULAR_CANONICAL):
        limit = _allowed_distance(target)
        if not limit:
            continue
        distance = _distance(skeleton, _skeleton(target), limit)
        if distance <= limit and (best is None or distance < best[0]):
            best = (distance, target)
    if best is None:
        return None
    return Typosquat(target=best[1], how=f"{best[0]} character(s) typed differently")
