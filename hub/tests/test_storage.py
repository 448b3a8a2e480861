"""The storage interface, the same contract on a folder and on SeaweedFS (S3)."""

from __future__ import annotations

import threading

import pytest

from reasoner_hub.errors import UserError
from reasoner_hub.backends import open_storage
from reasoner_hub.storage import LocalStorage, NotFound, PreconditionFailed


def test_put_get_size_exists_delete(storage):
    storage.put("models/o/n/a.txt", b"hello")
    assert storage.get("models/o/n/a.txt") == b"hello"
    assert storage.size("models/o/n/a.txt") == 5
    assert storage.exists("models/o/n/a.txt")
    storage.put("models/o/n/a.txt", b"replaced")
    assert storage.get("models/o/n/a.txt") == b"replaced"
    storage.delete("models/o/n/a.txt")
    assert not storage.exists("models/o/n/a.txt")
    storage.delete("models/o/n/a.txt")  # deleting a missing object is fine
    with pytest.raises(NotFound):
        storage.get("models/o/n/a.txt")
    with pytest.raises(NotFound):
        storage.size("nothing/here")


def test_ranges_copy_and_files(storage, tmp_path):
    data = bytes(range(256)) * 10
    storage.put("blob", data)
    assert b"".join(storage.open("blob")) == data
    assert b"".join(storage.open("blob", 10, 19)) == data[10:20]
    assert b"".join(storage.open("blob", 2550)) == data[2550:]
    storage.copy("blob", "dir/copy")
    assert storage.get("dir/copy") == data
    with pytest.raises(NotFound):
        storage.copy("missing", "dir/other")
    with pytest.raises(NotFound):
        list(storage.open("missing"))
    source = tmp_path / "upload.bin"
    source.write_bytes(data[::-1])
    storage.put_file("dir/uploaded", str(source))
    assert storage.get("dir/uploaded") == data[::-1]


def test_list_and_delete_prefix(storage):
    for key in ["r/a/1", "r/a/2", "r/b/3", "r/ab", "s/1"]:
        storage.put(key, key.encode())
    assert sorted(storage.list("r/a/")) == ["r/a/1", "r/a/2"]
    assert sorted(storage.list("r/a")) == ["r/a/1", "r/a/2", "r/ab"]
    assert sorted(storage.list("r/")) == ["r/a/1", "r/a/2", "r/ab", "r/b/3"]
    storage.delete_prefix("r/a/")
    assert sorted(storage.list("r/")) == ["r/ab", "r/b/3"]
    assert list(storage.list("nothing/")) == []


def test_conditional_writes(storage):
    version = storage.put_if("refs/main", b"one", None)
    with pytest.raises(PreconditionFailed):
        storage.put_if("refs/main", b"again", None)  # create-only: it exists
    data, current = storage.read_versioned("refs/main")
    assert data == b"one" and current == version
    newer = storage.put_if("refs/main", b"two", version)
    with pytest.raises(PreconditionFailed):
        storage.put_if("refs/main", b"stale", version)  # replace-only-at-version: it moved
    assert storage.read_versioned("refs/main") == (b"two", newer)
    with pytest.raises(PreconditionFailed):
        storage.put_if("refs/other", b"x", newer)  # a version of a missing object never matches
    assert storage.read_versioned("refs/other") is None


def test_conditional_writes_race_has_one_winner(storage):
    base = storage.put_if("refs/race", b"base", None)
    barrier = threading.Barrier(4)
    winners = []

    def write(i: int) -> None:
        barrier.wait()
        try:
            storage.put_if("refs/race", f"writer-{i}".encode(), base)
            winners.append(i)
        except PreconditionFailed:
            pass

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
    assert storage.get("refs/race") == f"writer-{winners[0]}".encode()


@pytest.mark.parametrize("key", ["../x", "a/../b", "/abs", "a//b", "a\\b", "a/./b", "", "a/"])
def test_keys_that_leave_the_store_are_refused(tmp_path, key):
    storage = LocalStorage(tmp_path / "bucket")
    with pytest.raises(ValueError):
        storage.put(key, b"x")
    assert not (tmp_path / "x").exists()


def test_folder_listing_hides_the_stores_own_folders(tmp_path):
    storage = LocalStorage(tmp_path / "bucket")
    storage.put_if("models/o/n/.hub/refs/heads/main", b"{}", None)
    storage.put("models/o/n/file", b"x")
    assert sorted(storage.list("")) == ["models/o/n/.hub/refs/heads/main", "models/o/n/file"]


@pytest.mark.parametrize("spec", ["s3://", "s3:///", "ftp://host/bucket"])
def test_storage_spec_errors_are_user_errors(spec):
    with pytest.raises(UserError):
        open_storage(spec)


def test_open_storage_folder(tmp_path):
    storage = open_storage(str(tmp_path / "hub"))
    assert isinstance(storage, LocalStorage) and (tmp_path / "hub").is_dir()


def test_writes_and_deletes_racing_in_one_folder_never_fail(tmp_path):
    """A delete of a folder's last file removes the folder; a write into it at that moment (another
    repo's journal entry, another branch's view) makes the folder again instead of failing."""
    storage = LocalStorage(tmp_path / "bucket")
    failures: list[BaseException] = []

    def churn(worker: int) -> None:
        try:
            for round_ in range(300):
                key = f"shared/folder/w{worker}-{round_}"
                storage.put(key, b"x", durable=False)
                storage.delete(key)
        except BaseException as error:  # noqa: BLE001 - collected for the assertion
            failures.append(error)

    threads = [threading.Thread(target=churn, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert list(storage.list("shared/")) == []
