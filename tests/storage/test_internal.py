from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kray.errors import StoragePathError
from kray.storage.internal import KRAY_SCHEME, InternalStorage, validate_path

# -- the same behaviour on every backend (local, memory, s3 via moto) ---------------------


def test_put_read_exists_size(storage: InternalStorage) -> None:
    uri = storage.put("company/team/flow/out.csv", b"a,b\n1,2\n")
    assert uri == "kray:///company/team/flow/out.csv"
    assert storage.read(uri) == b"a,b\n1,2\n"
    assert storage.read("company/team/flow/out.csv") == b"a,b\n1,2\n"
    assert storage.read("kray://company/team/flow/out.csv") == b"a,b\n1,2\n"
    assert storage.exists(uri)
    assert storage.size(uri) == 8
    assert not storage.exists("company/team/flow/missing.csv")


def test_overwrite_replaces(storage: InternalStorage) -> None:
    storage.put("a.txt", b"first version, longer")
    storage.put("a.txt", b"second")
    assert storage.read("a.txt") == b"second"


def test_missing_file_raises(storage: InternalStorage) -> None:
    with pytest.raises(FileNotFoundError):
        storage.read("nope/missing.bin")
    with pytest.raises(FileNotFoundError):
        storage.size("nope/missing.bin")


def test_delete(storage: InternalStorage) -> None:
    uri = storage.put("x/y.bin", b"1")
    assert storage.delete(uri) is True
    assert not storage.exists(uri)
    assert storage.delete(uri) is False
    assert storage.delete("never/was.bin") is False


def test_list_recursive_sorted(storage: InternalStorage) -> None:
    for path in ("ns/flow/b.txt", "ns/flow/a.txt", "ns/flow/sub/c.txt", "ns/other/d.txt",
                 "nsx/e.txt"):
        storage.put(path, b"x")
    assert storage.list("ns/flow") == [
        "kray:///ns/flow/a.txt", "kray:///ns/flow/b.txt", "kray:///ns/flow/sub/c.txt"]
    assert storage.list("ns/flow/") == storage.list("ns/flow")
    assert storage.list("kray:///ns") == [
        "kray:///ns/flow/a.txt", "kray:///ns/flow/b.txt", "kray:///ns/flow/sub/c.txt",
        "kray:///ns/other/d.txt"]
    assert "kray:///nsx/e.txt" in storage.list("")
    assert "kray:///nsx/e.txt" not in storage.list("ns")  # a folder prefix, not a string one
    assert storage.list("absent/folder") == []
    assert storage.list("ns/flow/a.txt") == []  # a file is not a folder


def test_put_file_and_open(storage: InternalStorage, tmp_path: Path) -> None:
    local = tmp_path / "upload.bin"
    local.write_bytes(os.urandom(3 * 1024 * 1024 + 17))  # bigger than one copy chunk
    uri = storage.put_file("up/load.bin", local)
    assert storage.read(uri) == local.read_bytes()
    with storage.open(uri) as f:
        assert f.read(10) == local.read_bytes()[:10]
    with storage.open("text/hello.txt", "w") as f:
        f.write("héllo\n")
    with storage.open("text/hello.txt", "r") as f:
        assert f.read() == "héllo\n"
    with storage.open("bin/data.bin", "wb") as f:
        f.write(b"\x00\x01")
    assert storage.read("bin/data.bin") == b"\x00\x01"


def test_unsupported_open_mode(storage: InternalStorage) -> None:
    with pytest.raises(ValueError, match="unsupported mode"):
        storage.open("a.txt", "ab")


def test_pickle_round_trip_recreates_filesystem(storage: InternalStorage) -> None:
    storage.put("p/q.txt", b"pickled")
    data = pickle.dumps(storage)
    assert len(data) < 1024  # only the base URL and options travel
    clone = pickle.loads(data)
    assert clone._fs is None  # built lazily in the receiving process
    assert clone.read("p/q.txt") == b"pickled"
    assert clone.url("p/q.txt") == storage.url("p/q.txt")


def test_path_errors_on_every_backend(storage: InternalStorage) -> None:
    with pytest.raises(StoragePathError):
        storage.put("../escape.txt", b"x")
    with pytest.raises(StoragePathError):
        storage.read("kray:///a/../../b")


# -- addressing ------------------------------------------------------------------------------


def test_uri_and_path_of() -> None:
    assert KRAY_SCHEME == "kray://"
    assert InternalStorage.uri("a/b.txt") == "kray:///a/b.txt"
    assert InternalStorage.path_of("kray:///a/b.txt") == "a/b.txt"
    assert InternalStorage.path_of("kray://a/b.txt") == "a/b.txt"
    assert InternalStorage.path_of("a/b.txt") == "a/b.txt"


def test_url_per_backend(tmp_path: Path) -> None:
    local = InternalStorage(str(tmp_path / "st"))
    assert local.url("kray:///a/b.csv") == str(tmp_path / "st" / "a" / "b.csv")
    assert local.local_path("a/b.csv") == str(tmp_path / "st" / "a" / "b.csv")
    as_file_url = InternalStorage(f"file://{tmp_path}/st")
    assert as_file_url.url("a/b.csv") == str(tmp_path / "st" / "a" / "b.csv")
    s3 = InternalStorage("s3://bucket/prefix/", key="k", secret="s")
    assert s3.url("kray:///a/b.csv") == "s3://bucket/prefix/a/b.csv"
    assert s3.local_path("a/b.csv") is None
    mem = InternalStorage("memory://kray-url-test")
    assert mem.url("a/b.csv") == "memory://kray-url-test/a/b.csv"
    assert mem.local_path("a/b.csv") is None


def test_relative_local_base_is_made_absolute(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = InternalStorage("data/storage")
    assert storage.local_path("a.txt") == str(tmp_path / "data" / "storage" / "a.txt")


@pytest.mark.parametrize("base", ["s3://", "memory://", "/"])
def test_base_url_must_name_a_root(base: str) -> None:
    with pytest.raises(StoragePathError, match="names no folder"):
        InternalStorage(base)


def test_unknown_protocol_is_a_clear_error() -> None:
    with pytest.raises(StoragePathError, match="nosuchproto"):
        InternalStorage("nosuchproto://bucket/x")


# -- path safety -----------------------------------------------------------------------------

ESCAPES = [
    "../x", "a/../../b", "a/..", "..", "./a", "a/./b", "/etc/passwd", "kray:////etc/passwd",
    "kray:///../x", "kray:///a/../../b", "kray://../x", "a\\..\\b", "a\\b", "a\x00b", "a/b\x00",
    "a\nb", "a\x7fb", "a//b", "a/b/", "", "kray:///", "kray://", "kray:///..%2fx",
    "..%2fetc%2fpasswd", "%2e%2e/x", "a/%2E%2E/..%2F..", "a%00b", "a%5c..%5cb", "s3://bucket/x",
    "file:///etc/passwd", "a/*.csv", "a/?", "a/[ab]", "a" * 256, "/".join(["abcd"] * 300),
]


@pytest.mark.parametrize("path", ESCAPES)
def test_path_escape_attempts_are_rejected(path: str, tmp_path: Path) -> None:
    storage = InternalStorage(str(tmp_path / "root"))
    with pytest.raises(StoragePathError):
        storage.path_of(path)
    with pytest.raises(StoragePathError):
        storage.put(path, b"x")
    with pytest.raises(StoragePathError):
        storage.read(path)
    assert not (tmp_path / "x").exists()


def test_error_messages_say_why() -> None:
    with pytest.raises(StoragePathError, match=r"'\.\.' segments"):
        validate_path("a/../../b")
    with pytest.raises(StoragePathError, match="absolute paths"):
        InternalStorage.path_of("/etc/passwd")
    with pytest.raises(StoragePathError, match="backslashes"):
        validate_path("a\\b")
    with pytest.raises(StoragePathError, match="control characters"):
        validate_path("a\x00b")
    with pytest.raises(StoragePathError, match="empty path segment"):
        validate_path("a//b")


def test_non_string_path_is_rejected() -> None:
    with pytest.raises(StoragePathError, match="must be a string"):
        InternalStorage.path_of(Path("a/b"))  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["a/b.csv", "a/..b/c", "a/b..", "x/.hidden", "a/b c/d.txt",
                                  "ünïcode/файл.txt", "a/b%20c.txt", "a:b/c", "a/...", "-x/y"])
def test_ordinary_paths_are_accepted(path: str, tmp_path: Path) -> None:
    storage = InternalStorage(str(tmp_path / "root"))
    uri = storage.put(path, b"ok")
    assert storage.read(uri) == b"ok"
    assert Path(storage.local_path(uri) or "").resolve().is_relative_to(tmp_path / "root")


def test_list_prefix_is_validated(tmp_path: Path) -> None:
    storage = InternalStorage(str(tmp_path / "root"))
    with pytest.raises(StoragePathError):
        storage.list("../")
    with pytest.raises(StoragePathError):
        storage.list("/etc")


# -- atomic local writes ---------------------------------------------------------------------


def test_local_put_is_atomic_for_concurrent_readers(tmp_path: Path) -> None:
    storage = InternalStorage(str(tmp_path / "root"))
    old, new = b"o" * 4_000_000, b"n" * 4_000_000
    storage.put("big.bin", old)
    seen: set[bytes] = set()
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            data = storage.read("big.bin")
            seen.add(data[:1] + data[-1:] + str(len(data)).encode())

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for i in range(20):
            storage.put("big.bin", new if i % 2 == 0 else old)
    finally:
        stop.set()
        thread.join()
    assert seen <= {b"oo4000000", b"nn4000000"}  # never a torn or half-written file


def test_local_write_goes_through_a_temp_file(tmp_path: Path) -> None:
    storage = InternalStorage(str(tmp_path / "root"))
    storage.put("d/file.txt", b"old")
    f = storage.open("d/file.txt", "wb")
    f.write(b"partial new content")
    f.flush()
    assert storage.read("d/file.txt") == b"old"  # not visible until closed
    assert storage.list("d") == ["kray:///d/file.txt"]  # the temp file is never listed
    f.close()
    assert storage.read("d/file.txt") == b"partial new content"
    assert os.listdir(tmp_path / "root" / "d") == ["file.txt"]


def test_local_write_failure_keeps_the_old_file(tmp_path: Path) -> None:
    storage = InternalStorage(str(tmp_path / "root"))
    storage.put("d/file.txt", b"old")
    for mode in ("wb", "w"):
        with pytest.raises(RuntimeError), storage.open("d/file.txt", mode) as f:
            f.write(b"half" if mode == "wb" else "half")
            raise RuntimeError("task crashed mid-write")
        assert storage.read("d/file.txt") == b"old"
    assert os.listdir(tmp_path / "root" / "d") == ["file.txt"]


def test_put_file_failure_leaves_no_temp(tmp_path: Path) -> None:
    storage = InternalStorage(str(tmp_path / "root"))
    with pytest.raises(FileNotFoundError):
        storage.put_file("d/x.bin", tmp_path / "does-not-exist")
    assert not (tmp_path / "root" / "d").exists() or \
        os.listdir(tmp_path / "root" / "d") == []


def test_failed_flush_installs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = InternalStorage(str(tmp_path / "root"))
    storage.put("d/file.txt", b"old")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        storage.put("d/file.txt", b"new")
    monkeypatch.undo()
    assert storage.read("d/file.txt") == b"old"
    assert os.listdir(tmp_path / "root" / "d") == ["file.txt"]


@pytest.mark.parametrize("storage", ["local", "s3"], indirect=True)  # memory is per process
def test_unpickled_in_another_process(storage: InternalStorage) -> None:
    """What a Ray worker does: receive the pickled storage and use it in a fresh process."""
    storage.put("shared/in.txt", b"from the executor")
    script = ("import pickle, sys; s = pickle.loads(sys.stdin.buffer.read()); "
              "s.put('shared/out.txt', s.read('shared/in.txt').upper())")
    subprocess.run([sys.executable, "-c", script], input=pickle.dumps(storage), check=True,
                   timeout=60)
    assert storage.read("shared/out.txt") == b"FROM THE EXECUTOR"


def test_duckdb_reads_the_backend_url(tmp_path: Path) -> None:
    import duckdb

    storage = InternalStorage(str(tmp_path / "root"))
    uri = storage.put("ns/flow/data.csv", b"a,b\n1,2\n3,4\n")
    con = duckdb.connect()
    try:
        assert con.execute("SELECT sum(a + b) FROM read_csv(?)",
                           [storage.url(uri)]).fetchone() == (10,)
    finally:
        con.close()
