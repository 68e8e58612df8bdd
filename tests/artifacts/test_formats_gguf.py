"""GGUF: header and metadata parsing, tensor infos, and chat template checks.

Files are written by a small writer that follows the GGUF specification
(ggml/docs/gguf.md): magic, version, counts, key/value pairs, tensor infos,
alignment padding, tensor data.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from mlwarden.artifacts._context import Limits, ScanContext
from mlwarden.artifacts._dispatch import HEAD_BYTES, run_reader
from mlwarden.artifacts._formats import gguf
from mlwarden.artifacts._formats._jinja_check import template_threats
from mlwarden.errors import MalformedInputError
from mlwarden.report import Finding

READER = gguf.READERS[0]
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_CODES = {U8: "B", I8: "b", U16: "H", I16: "h", U32: "I", I32: "i", F32: "f", BOOL: "?",
          U64: "Q", I64: "q", F64: "d"}  # fmt: skip

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
LLAMA3 = """{{- bos_token }}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" + system_message + "<|eot_id|>" }}
{%- for message in messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('Conversation roles must alternate user/assistant/user/assistant') }}
    {%- endif %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}
    {{- message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""
COUNTERS = """{%- set ns = namespace(system=none, idx=0, last_query=-1) -%}
{%- for m in messages[::-1] -%}
  {%- if ns.last_query == -1 and m.role == 'user' and not m.content.startswith('<tool') -%}
    {%- set ns.last_query = messages|length - 1 - loop.index0 -%}
  {%- endif -%}
  {%- if loop.index > 50 %}{% break %}{% endif -%}
{%- endfor -%}
{%- for m in messages -%}
  {%- if m.tool_calls is defined -%}{%- for call in m.tool_calls -%}
    {{ call.function.name }}{{ call.function.arguments | tojson }}
  {%- endfor -%}{%- endif -%}
  {% generation %}{{ m.content.strip() | replace('\\r', '') }}{% endgeneration %}
{%- endfor -%}{{ strftime_now('%d %b %Y') }}{{ eos_token if not add_generation_prompt }}"""


class Writer:
    """A GGUF file writer for tests (versions 1 to 3, little or big endian)."""

    def __init__(self, version: int = 3, order: str = "<") -> None:
        self.version, self.order = version, order
        self.kvs: list[tuple[str, int, object]] = []
        self.tensors: list[tuple[str, list[int], int, bytes]] = []
        self.alignment = 32

    def _count(self, n: int) -> bytes:
        return struct.pack(self.order + ("I" if self.version == 1 else "Q"), n)

    def _string(self, text: str | bytes) -> bytes:
        raw = text.encode() if isinstance(text, str) else text
        return self._count(len(raw)) + raw

    def _value(self, kind: int, value: object) -> bytes:
        if kind == STRING:
            return self._string(value)  # type: ignore[arg-type]
        if kind == ARRAY:
            inner, items = value  # type: ignore[misc]
            body = b"".join(self._value(inner, item) for item in items)
            return struct.pack(self.order + "I", inner) + self._count(len(items)) + body
        return struct.pack(self.order + _CODES[kind], value)

    def kv(self, key: str, kind: int, value: object) -> Writer:
        self.kvs.append((key, kind, value))
        return self

    def tensor(self, name: str, dims: list[int], ggml_type: int, data: bytes) -> Writer:
        self.tensors.append((name, dims, ggml_type, data))
        return self

    def build(self, *, offsets: list[int] | None = None, truncate: int | None = None) -> bytes:
        out = b"GGUF" + struct.pack(self.order + "I", self.version)
        out += self._count(len(self.tensors)) + self._count(len(self.kvs))
        for key, kind, value in self.kvs:
            out += self._string(key) + struct.pack(self.order + "I", kind)
            out += self._value(kind, value)
        data = b""
        for index, (name, dims, kind, blob) in enumerate(self.tensors):
            pad = -len(data) % self.alignment
            data += b"\0" * pad
            offset = offsets[index] if offsets else len(data)
            out += self._string(name) + struct.pack(self.order + "I", len(dims))
            out += b"".join(self._count(d) for d in dims)
            out += struct.pack(self.order + "IQ", kind, offset)
            data += blob
        out += b"\0" * (-len(out) % self.alignment) + data
        return out[:truncate] if truncate else out


def typical(template: str = CHATML) -> Writer:
    return (
        Writer()
        .kv("general.architecture", STRING, "llama")
        .kv("general.name", STRING, "tiny")
        .kv("llama.context_length", U32, 2048)
        .kv("llama.rope.freq_base", F32, 10000.0)
        .kv("general.file_type", U32, 1)
        .kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["<s>", "</s>", "a", "b"]))
        .kv("tokenizer.ggml.scores", ARRAY, (F32, [0.0, 0.0, -1.0, -2.0]))
        .kv("tokenizer.ggml.token_type", ARRAY, (I32, [3, 3, 1, 1]))
        .kv("nested", ARRAY, (ARRAY, [(U8, [1, 2]), (U8, [3])]))
        .kv("flags", ARRAY, (BOOL, [True, False]))
        .kv("big", U64, 2**63)
        .kv("neg", I64, -5)
        .kv("ratio", F64, 0.5)
        .kv("tokenizer.chat_template", STRING, template)
        .tensor("token_embd.weight", [4, 2], 0, b"\0" * 32)
        .tensor("blk.0.attn_q.weight", [32, 2], 8, b"\1" * 68)
        .tensor("output_norm.weight", [4], 1, b"\0" * 8)
    )


def scan(data: bytes, tmp_path: Path, limits: Limits | None = None) -> list[Finding]:
    path = tmp_path / "model.gguf"
    path.write_bytes(data)
    ctx = ScanContext(limits=limits or Limits(), root=tmp_path)
    with path.open("rb") as stream:
        assert READER.sniff(stream.read(HEAD_BYTES), len(data))
        run_reader(READER, stream, str(path), ctx, 0)
    return ctx.findings


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule_id for f in findings]


@pytest.mark.parametrize("template", [CHATML, LLAMA3, COUNTERS])
def test_real_templates_are_clean(tmp_path: Path, template: str) -> None:
    assert scan(typical(template).build(), tmp_path) == []


@pytest.mark.parametrize(("version", "order"), [(1, "<"), (2, "<"), (3, "<"), (3, ">")])
def test_versions_and_byte_orders(tmp_path: Path, version: int, order: str) -> None:
    writer = typical()
    writer.version, writer.order = version, order
    assert scan(writer.build(), tmp_path) == []


MALICIOUS = [
    "{{ cycler.__init__.__globals__.os.popen('true').read() }}",
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{{ c }}{% endfor %}",
    "{{ lipsum['__glob' ~ 'als__']['os'].system('true') }}",
    "{% set ns = namespace() %}{{ ns.__init__.__globals__.__builtins__['eval']('1') }}",
    "{{ messages|attr('__class__') }}",
    "{{ self._TemplateReference__context.joiner }}",
    "{{ x|attr(request.args.a) }}",
    "{{ config.items() }}",
    "{{ joiner.__init__ }}",
    "{{ (messages|first).__getattribute__('x') }}",
]


@pytest.mark.parametrize("template", MALICIOUS)
def test_template_injection_is_gguf001(tmp_path: Path, template: str) -> None:
    findings = scan(typical(template).build(), tmp_path)
    assert findings and set(rules(findings)) == {"GGUF001"}
    assert all("tokenizer.chat_template" in f.message for f in findings)


def test_named_templates_are_checked(tmp_path: Path) -> None:
    writer = typical().kv("tokenizer.chat_template.tool_use", STRING, MALICIOUS[0])
    findings = scan(writer.build(), tmp_path)
    assert set(rules(findings)) == {"GGUF001"}
    assert all(f.detail["key"] == "tokenizer.chat_template.tool_use" for f in findings)


def test_template_that_does_not_parse(tmp_path: Path) -> None:
    findings = scan(typical("{% for m in messages %}{{ m }").build(), tmp_path)
    assert rules(findings) == ["GGUF002"]


def test_threats_are_named() -> None:
    assert "reaches the internal attribute '__globals__'" in template_threats(MALICIOUS[0])
    with pytest.raises(MalformedInputError):
        template_threats("{% if %}")


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda w: w.build(truncate=400), "past the end"),
        (lambda w: w.kv("general.name", STRING, "again").build(), "duplicate metadata key"),
    ],
)
def test_malformed_headers(tmp_path: Path, mutate: object, expected: str) -> None:
    findings = scan(mutate(typical()), tmp_path)  # type: ignore[operator]
    assert rules(findings) == ["GGUF002"]
    assert expected in findings[0].message


def _replace_u32(data: bytes, marker: bytes, value: int) -> bytes:
    """Overwrite the u32 that follows `marker` (a key or tensor name)."""
    at = data.index(marker) + len(marker)
    return data[:at] + struct.pack("<I", value) + data[at + 4 :]


def test_unknown_value_type(tmp_path: Path) -> None:
    data = _replace_u32(typical().build(), b"general.name", 77)
    assert "unknown value type 77" in scan(data, tmp_path)[0].message


def test_impossible_counts(tmp_path: Path) -> None:
    data = bytearray(typical().build())
    data[16:24] = struct.pack("<Q", 2**60)  # kv count
    assert "cannot fit" in scan(bytes(data), tmp_path)[0].message
    huge = Writer().kv("tokens", ARRAY, (STRING, ["a"])).build()
    at = huge.index(b"tokens") + len(b"tokens") + 8
    huge = huge[:at] + struct.pack("<Q", 2**62) + huge[at + 8 :]
    assert "cannot fit" in scan(huge, tmp_path)[0].message


def test_string_limit(tmp_path: Path) -> None:
    findings = scan(typical().build(), tmp_path, Limits(max_header_bytes=64))
    assert rules(findings) == ["GGUF002"]


def test_tensor_problems(tmp_path: Path) -> None:
    writer = typical()
    overlapping = writer.build(offsets=[0, 0, 128])
    assert any("overlaps" in f.message for f in scan(overlapping, tmp_path))
    misaligned = writer.build(offsets=[0, 40, 128])
    assert any("not aligned" in f.message for f in scan(misaligned, tmp_path))
    past = writer.build(offsets=[0, 32, 1 << 40])
    assert any("runs past" in f.message for f in scan(past, tmp_path))
    five_dims = Writer().tensor("t", [1, 1, 1, 1, 1], 0, b"\0" * 4).build()
    assert "5 dimensions" in scan(five_dims, tmp_path)[0].message
    odd_block = Writer().tensor("q", [16], 8, b"\0" * 34).build()
    assert "block size 32" in scan(odd_block, tmp_path)[0].message
    unknown = Writer().tensor("u", [4], 250, b"\0" * 4).build()
    assert "unknown ggml type 250" in scan(unknown, tmp_path)[0].message


def test_sniff() -> None:
    assert READER.sniff(b"GGUF\x03\0\0\0" + b"\0" * 16, 24)
    assert not READER.sniff(b"GGML" + b"\0" * 20, 24)


@pytest.mark.parametrize(
    "template",
    [
        "{{ '__Note__: be brief' }}{{ messages|join('_') }}{{ '__' }}",
        "{{ 'snake_case_name' }}{{ message['content'].split('__end__')[0] }}",
    ],
)
def test_prose_with_underscores_is_clean(template: str) -> None:
    assert template_threats(template) == []


def test_name_pieces_are_found() -> None:
    threats = template_threats("{{ x[('__cla' ~ 'ss__')] }}")
    assert any("'__cla'" in t for t in threats)
    assert any("'ss__'" in t for t in threats)


# Keys built from strings at render time: a non-sandboxed Jinja environment reads
# x["__class__"] as getattr(x, "__class__") when the item lookup fails.
COMPUTED_NAMES = [
    '{{ ()["__ssalc__"|reverse]["__esab__"|reverse]["__sessalcbus__"|reverse]() }}',
    '{{ ()["_"~"_"~"class"~"_"~"_"] }}',
    '{{ ()["%c%cclass%c%c"|format(95, 95, 95, 95)] }}',
    '{{ ()["__CLASS__"|lower] }}',
    "{% set k = dict(__class__=1)|first %}{{ ()[k] }}",
    '{{ ()["xxclassxx"|replace("x", "_")] }}',
    '{{ ()["_" * 2 ~ "class" ~ "_" * 2] }}',
    '{{ ()[["_", "_", "class", "_", "_"]|join] }}',
    '{{ x["metsys"|reverse]("true") }}',
]


@pytest.mark.parametrize("template", COMPUTED_NAMES)
def test_internal_names_computed_from_strings(tmp_path: Path, template: str) -> None:
    assert template_threats(template)
    assert set(rules(scan(typical(template).build(), tmp_path))) == {"GGUF001"}


def test_folding_is_bounded() -> None:
    # Neither is evaluated: the scanner must not build gigabyte strings.
    assert template_threats('{{ "a" * 999999999 }}{{ "%999999999c"|format(95) }}') == []
    nested = '"a"' + '|replace("a", "aaaaaaaaaa")' * 12
    assert template_threats("{{ " + nested + " }}") == []


# Real chat templates (abridged where long) that build strings with ~, filters and %.
REAL_STRING_BUILDING = [
    # Mistral v0.3 style
    "{%- for message in messages %}{%- if message['role'] == 'user' %}"
    "{{- '[INST] ' + message['content'] + '[/INST]' }}{%- else %}"
    "{{- ' ' + message['content']|trim + eos_token }}{%- endif %}{%- endfor %}",
    # Gemma
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}"
    "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
    "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}",
    # Phi-3
    "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + message['content']"
    " + '<|end|>\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}"
    "{% else %}{{ eos_token }}{% endif %}",
    # Tool-calling templates
    "{%- for tool in tools %}{{- tool.function.name|replace(' ', '_')|lower ~ ': ' }}"
    "{{- tool.function.parameters|tojson }}{%- endfor %}"
    "{{- '<tool_call>\\n' ~ ('%s' % 'x') ~ '\\n</tool_call>' }}{{ '=' * 20 }}",
    "{{ ['<|', 'user', '|>']|join }}{{ 'User'|upper ~ '_' ~ 'NAME' }}{{ 'abc'|reverse }}",
]


@pytest.mark.parametrize("template", REAL_STRING_BUILDING)
def test_real_string_building_is_clean(tmp_path: Path, template: str) -> None:
    assert template_threats(template) == []
    assert scan(typical(template).build(), tmp_path) == []
