"""`mlwarden assess` on bad input of every kind: one line with a stable code, exit 2 (or
1 for a refused verification, as everywhere in the CLI), never a traceback, never a
pass; secrets never leave the process; the HTML report escapes what came from input."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.assess_cli.conftest import FAST, Served, write_config
from tests.cli_support import Marker, one_line_error

from mlwarden.cli import main

KEY_VAR = "ASSESS_BAD_INPUT_KEY"


def _local(served: Served, data: Path, *extra: str, model: Path | None = None) -> list[str]:
    return [
        "assess", str(model or served.models.folder / "digits.joblib"),
        "--key", str(served.models.signer_public), "--data", str(data), *extra,
    ]  # fmt: skip


def _digits_arrays(served: Served) -> dict[str, np.ndarray]:
    with np.load(served.data, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _write(path: Path, **arrays: Any) -> Path:
    np.savez(path, **arrays)
    return path


# --- the data file ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "the file is empty"),
        (b"members_x,members_y\n1,2\n", "not an .npz archive"),
        (b"PK\x03\x04 truncated", "corrupt .npz"),
    ],
)
def test_unreadable_data_files(
    served: Served,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: bytes,
    words: str,
) -> None:
    path = tmp_path / "data.npz"
    path.write_bytes(content)
    assert main(_local(served, path)) == 2
    assert words in one_line_error(capsys, "E175")


def test_missing_data_file_and_folder(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_local(served, tmp_path / "absent.npz")) == 2
    assert "no such file" in one_line_error(capsys, "E175")
    assert main(_local(served, tmp_path)) == 2
    one_line_error(capsys, "E175")


def test_a_single_npy_is_not_an_npz(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 64)))
    assert main(_local(served, path)) == 2
    assert "single .npy" in one_line_error(capsys, "E175")


def test_object_arrays_are_refused_without_unpickling(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "unpickled"
    arrays = _digits_arrays(served)
    arrays["members_x"] = np.array([Marker(marker)] * 3, dtype=object)
    path = _write(tmp_path / "data.npz", **arrays)
    assert main(_local(served, path)) == 2
    assert "pickled data is refused" in one_line_error(capsys, "E175")
    assert not marker.exists()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"members_x": np.full((10, 64), np.nan)}, "NaN or infinity"),
        ({"members_x": np.full((10, 64), -np.inf)}, "NaN or infinity"),
        ({"members_x": np.full((10, 64), 1e300)}, "values beyond"),
        ({"members_x": np.zeros((0, 64))}, "0 rows"),
        ({"members_x": np.zeros((10, 0))}, "numeric array"),
        ({"members_x": np.array([["a"] * 64] * 10)}, "numeric array"),
        ({"members_x": np.zeros((10, 64), dtype=complex)}, "numeric array"),
        ({"members_x": np.zeros(10)}, "numeric array"),
        ({"members_y": np.full(10, 10**12)}, "class indices"),
        ({"members_y": np.full(10, -1)}, "class indices"),
        ({"members_y": np.zeros(10, dtype=float)}, "class indices"),
        ({"members_y": np.zeros(3, dtype=int)}, "has shape"),
    ],
)
def test_bad_arrays_name_the_array(
    served: Served,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: dict[str, np.ndarray],
    words: str,
) -> None:
    arrays = _digits_arrays(served)
    arrays["members_x"], arrays["members_y"] = arrays["members_x"][:10], arrays["members_y"][:10]
    arrays.update(change)
    path = _write(tmp_path / "data.npz", **arrays)
    with _no_warnings():
        assert main(_local(served, path)) == 2
    assert words in one_line_error(capsys, "E175")


@contextmanager
def _no_warnings() -> Iterator[None]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow warning would print beside the error
        yield


def test_data_of_another_width_than_the_model(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arrays = {k: (v[:, :10] if k.endswith("_x") else v) for k, v in _digits_arrays(served).items()}
    path = _write(tmp_path / "narrow.npz", **arrays)
    assert main(_local(served, path, "--attacks", "evasion")) == 2
    assert "64 features" in one_line_error(capsys, "E179")


# --- the model file --------------------------------------------------------------------


def test_unsigned_model_is_refused_before_loading(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pickle

    marker = tmp_path / "unpickled"
    model = tmp_path / "unsigned.pkl"
    model.write_bytes(pickle.dumps(Marker(marker)))
    assert main(_local(served, served.data, model=model)) == 1  # a refused verification
    one_line_error(capsys, "E208")
    assert not marker.exists()


def test_scan_flagged_model_is_refused_before_loading(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pickle

    from mlwarden.signing import sign

    marker = tmp_path / "unpickled"
    model = tmp_path / "evil.pkl"
    model.write_bytes(pickle.dumps(Marker(marker)))
    sign(model, key=served.models.signer_private, signature=tmp_path / "evil.pkl.sig")
    assert main(_local(served, served.data, model=model)) == 1
    one_line_error(capsys, "E205")
    assert not marker.exists()


def test_missing_model_and_key(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_local(served, served.data, model=tmp_path / "absent.joblib")) == 2
    one_line_error(capsys, "E102")
    model = str(served.models.folder / "digits.joblib")
    assert main(["assess", model, "--data", str(served.data)]) == 2
    one_line_error(capsys, "E101")
    assert main(["assess", model, "--key", str(served.data), "--data", str(served.data)]) == 2
    one_line_error(capsys, "E112")


# --- options and the configuration -------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        ("--attacks", "evasion,teleport"),
        ("--attacks", ","),
        ("--seed", "-1"),
        ("--format", "pdf"),
    ],
)
def test_nonsense_options(
    served: Served, capsys: pytest.CaptureFixture[str], extra: tuple[str, ...]
) -> None:
    assert main(_local(served, served.data, *extra)) == 2
    one_line_error(capsys, "E101")


@pytest.mark.parametrize(
    ("section", "field"),
    [
        ({"budget": {"queries": -5}}, "budget.queries"),
        ({"budget": {"rate": 0}}, "budget.rate"),
        ({"budget": {"timeout": 0}}, "budget.timeout"),
        ({"thresholds": {"robust_accuracy": {"epsilon": 5, "min": 0.5}}}, "epsilon"),
        ({"thresholds": {"membership_auc": {"max": -1}}}, "membership_auc.max"),
        ({"attacks": {"evasion_epsilons": [0.1, 7]}}, "evasion_epsilons.1"),
        ({"attacks": {"evasion_epsilons": []}}, "evasion_epsilons"),
        ({"attacks": {"extraction_budgets": [0]}}, "extraction_budgets.0"),
        ({"attacks": {"extraction_strategies": ["telepathy"]}}, "extraction_strategies.0"),
        ({"attacks": {"shadows": 1}}, "shadows"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_nonsense_configuration_is_refused_before_any_attack(
    served: Served,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    section: dict[str, Any],
    field: str,
) -> None:
    config = tmp_path / "mlwarden.yaml"
    config.write_text(json.dumps({"version": 1, "assess": section}))
    assert main(_local(served, served.data, "--config", str(config))) == 2
    assert field in one_line_error(capsys, "E110")


@pytest.mark.parametrize("option", ["--output", "--html"])
def test_output_into_a_missing_folder_fails_before_the_attacks(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    import time

    started = time.perf_counter()
    target = tmp_path / "no" / "such" / "report.out"
    assert main(_local(served, served.data, option, str(target))) == 2
    assert "no folder" in one_line_error(capsys, "E111")
    assert time.perf_counter() - started < 5  # refused up front, not after the attacks


# --- endpoints -------------------------------------------------------------------------


def _remote(url: str, data: Path, config: Path, *extra: str) -> list[str]:
    return ["assess", "--url", url, "--data", str(data), "--config", str(config), *extra]


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("ftp://127.0.0.1/v2/models/digits", "E176"),
        ("http://[::1/v2/models/digits", "E176"),
        ("http://127.0.0.1:99999/v2/models/digits", "E176"),
        ("http://127.0.0.1:1", "E176"),  # no model named
        ("not a url", "E176"),
        ("http://127.0.0.1:1/v2/models/digits", "E501"),  # nothing listens
    ],
)
def test_bad_urls(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str, code: str
) -> None:
    assert main(_remote(url, served.data, write_config(tmp_path))) == 2
    one_line_error(capsys, code)


def test_credentials_in_the_url_are_refused_and_never_echoed(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"http://scott:tiger-secret@{served.url.split('://')[1]}/v2/models/digits?token=t0ps3cret"
    assert main(_remote(url, served.data, write_config(tmp_path))) == 2
    line = one_line_error(capsys, "E176")
    assert "tiger-secret" not in line and "t0ps3cret" not in line


def test_missing_or_empty_key_variable(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"{served.url}/v2/models/digits"
    monkeypatch.delenv(KEY_VAR, raising=False)
    config = write_config(tmp_path)
    assert main(_remote(url, served.data, config, "--api-key-env", KEY_VAR)) == 2
    assert KEY_VAR in one_line_error(capsys, "E101")
    monkeypatch.setenv(KEY_VAR, "  ")
    assert main(_remote(url, served.data, config, "--token-env", KEY_VAR)) == 2
    one_line_error(capsys, "E101")


@pytest.mark.parametrize(
    ("value", "extra"),
    [
        ("mlw_secret\r\nx-injected: 1", ()),
        ("mlw_secret", ("--api-key-header", "x key\n")),
    ],
)
def test_keys_and_headers_http_cannot_carry(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    value: str,
    extra: tuple[str, ...],
) -> None:
    monkeypatch.setenv(KEY_VAR, value)
    url = f"{served.url}/v2/models/digits"
    args = _remote(url, served.data, write_config(tmp_path), "--api-key-env", KEY_VAR, *extra)
    assert main(args) == 2
    assert "mlw_secret" not in one_line_error(capsys, "E101")


def test_wrong_key_is_refused_and_not_printed(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(KEY_VAR, "mlw_wrong_but_secret_value")
    url = f"{served.url}/v2/models/digits"
    assert main(_remote(url, served.data, write_config(tmp_path), "--api-key-env", KEY_VAR)) == 2
    captured = capsys.readouterr()
    assert "E177" in captured.err and "Traceback" not in captured.err
    assert "mlw_wrong_but_secret_value" not in captured.err + captured.out


def test_secrets_never_reach_the_reports(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = served.env.api_keys["batch"]
    monkeypatch.setenv(KEY_VAR, key)
    html, out = tmp_path / "r.html", tmp_path / "r.json"
    args = _remote(
        f"{served.url}/v2/models/digits-bare", served.data, write_config(tmp_path),
        "--api-key-env", KEY_VAR, "--attacks", "extraction", "--html", str(html),
        "--format", "json", "-o", str(out),
    )  # fmt: skip
    assert main(args) in (0, 1)
    captured = capsys.readouterr()
    for text in (html.read_text(), out.read_text(), captured.out, captured.err):
        assert key not in text
    assert json.loads(out.read_text())["assessment"][0]["attacks"]["extraction"]["status"] == "done"


def test_an_assessment_that_measured_nothing_does_not_pass(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # An endpoint gives no gradients: inversion alone measures nothing there.
    monkeypatch.setenv(KEY_VAR, served.env.api_keys["batch"])
    url = f"{served.url}/v2/models/digits-bare"
    args = _remote(url, served.data, write_config(tmp_path), "--api-key-env", KEY_VAR)
    assert main([*args, "--attacks", "inversion", "--format", "json"]) == 2
    captured = capsys.readouterr()
    assert "no attack could be measured" in captured.err
    assert json.loads(captured.out)["results"][-1]["status"] == "skipped"


def test_strict_fails_a_requested_attack_that_did_not_apply(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(KEY_VAR, served.env.api_keys["batch"])
    url = f"{served.url}/v2/models/digits-bare"
    lenient = {"membership_auc": {"max": 1.0}, "membership_tpr_at_1pct_fpr": {"max": 1.0}}
    args = _remote(url, served.data, write_config(tmp_path, lenient), "--api-key-env", KEY_VAR)
    args += ["--attacks", "membership,inversion"]
    assert main(args) == 0  # inversion does not apply to an endpoint: skipped
    capsys.readouterr()
    assert main([*args, "--strict"]) == 2
    assert "#inversion" in one_line_error(capsys, "E172")


def test_an_attack_that_failed_does_not_pass(
    served: Served,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A budget too small for the attack: it cannot finish, and the gate says so.
    monkeypatch.setenv(KEY_VAR, served.env.api_keys["batch"])
    url = f"{served.url}/v2/models/digits-bare"
    config = write_config(tmp_path, None, queries=20)
    assert main(_remote(url, served.data, config, "--api-key-env", KEY_VAR)) == 2
    err = capsys.readouterr().err
    assert "E171" in err and "Traceback" not in err


# --- endpoints that misbehave ------------------------------------------------------------

METADATA = {"name": "m", "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 64]}]}


@contextmanager
def _server(answer: Callable[[Any], tuple[int, bytes]], **headers: str) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 answering every request with `answer(request)`."""

    class Handler(BaseHTTPRequestHandler):
        def _reply(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            status, body = answer(self)
            try:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                for header, value in headers.items():
                    self.send_header(header.replace("_", "-"), value)
                self.end_headers()
                self.wfile.write(body)
            except OSError:  # the client gave up (the timeout test)
                pass

        do_GET = do_POST = _reply

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v2/models/m"
    finally:
        server.shutdown()
        server.server_close()


def _metadata_then(infer: bytes, status: int = 200) -> Callable[[Any], tuple[int, bytes]]:
    def answer(request: Any) -> tuple[int, bytes]:
        if request.command == "GET":
            return 200, json.dumps(METADATA).encode()
        return status, infer

    return answer


def _outputs(data: Any, shape: list[int], datatype: str = "FP32") -> bytes:
    tensor = {"name": "probabilities", "datatype": datatype, "shape": shape, "data": data}
    return json.dumps({"outputs": [tensor]}).encode()


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (lambda r: (200, b"<html>not json</html>"), "E503"),  # metadata is not JSON
        (lambda r: (200, b"[" * 100_000 + b"]" * 100_000), "E503"),  # deep nesting
        (lambda r: (200, json.dumps({"inputs": "x"}).encode()), "E176"),
        (_metadata_then(b"garbage"), "E503"),
        (_metadata_then(b"{" * 50_000), "E503"),
        (_metadata_then(json.dumps({"outputs": "x"}).encode()), "E174"),
        (_metadata_then(_outputs(["a"] * 10, [1, 10])), "E174"),
        (_metadata_then(_outputs([[1, 2], [3]], [1, 10])), "E174"),
        (_metadata_then(_outputs([float("nan")] * 10, [1, 10], "FP64")), "E174"),
        (_metadata_then(_outputs([10**30], [1], "INT64")), "E174"),
        (_metadata_then(_outputs([-3], [1], "INT64")), "E174"),
        (_metadata_then(b"{}", status=500), "E503"),
        (_metadata_then(b"{}", status=302), "E503"),
    ],
)
def test_a_server_that_answers_garbage(
    served: Served,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    answer: Callable[[Any], tuple[int, bytes]],
    code: str,
) -> None:
    with _server(answer) as url:
        assert main(_remote(url, served.data, write_config(tmp_path))) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1 and f"error: {code}" in err, err


def test_server_words_cannot_drive_the_terminal(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    said = json.dumps({"code": "E130", "message": "\x1b[2J\x1b]0;owned\x07\rfake\nline"})
    with _server(_metadata_then(said.encode(), status=400)) as url:
        assert main(_remote(url, served.data, write_config(tmp_path))) == 2
    line = one_line_error(capsys, "E176")
    assert "\x1b" not in line and "\r" not in line and "\x07" not in line


def test_a_negative_retry_after_does_not_crash(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # time.sleep(-5) would raise: the header is ignored and the usual wait applies.
    with _server(_metadata_then(b'{"code": "E402"}', status=429), retry_after="-5") as url:
        assert main(_remote(url, served.data, write_config(tmp_path))) == 2
    one_line_error(capsys, "E178")


def test_a_slow_server_times_out(
    served: Served, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = threading.Event()

    def slow(request: Any) -> tuple[int, bytes]:
        release.wait(10)
        return 200, json.dumps(METADATA).encode()

    config = tmp_path / "mlwarden.yaml"
    section = {"attacks": FAST, "budget": {"timeout": 0.3}}
    config.write_text(json.dumps({"version": 1, "assess": section}))
    try:
        with _server(slow) as url:
            assert main(_remote(url, served.data, config)) == 2
            release.set()
    finally:
        release.set()
    assert "within 0.3 s" in one_line_error(capsys, "E502")


# --- the HTML report -------------------------------------------------------------------


def test_html_escapes_what_came_from_input(served: Served, tmp_path: Path) -> None:
    from mlwarden.signing import sign

    name = "<img src=x onerror=alert(1)><script>alert(2)<script>.joblib"  # no "/" in names
    model = tmp_path / name
    shutil.copy(served.models.folder / "digits.joblib", model)
    sign(model, key=served.models.signer_private, signature=tmp_path / f"{name}.sig")
    html = tmp_path / "report.html"
    config = write_config(tmp_path)
    code = main(_local(served, served.data, "--config", str(config), "--attacks", "evasion",
                       "--html", str(html), model=model))  # fmt: skip
    assert code in (0, 1)
    page = html.read_text()
    assert "<script" not in page and "<img" not in page
    assert "&lt;script&gt;alert(2)&lt;script&gt;" in page
