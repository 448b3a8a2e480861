"""Client process with huggingface_hub's defaults (Xet on): upload or download through HF_ENDPOINT.

Usage:
    xet_client.py upload-folder REPO_ID FOLDER
    xet_client.py upload-file REPO_ID LOCAL_FILE PATH_IN_REPO [REPO_TYPE]
    xet_client.py download REPO_ID FOLDER OUT_DIR     (every file of FOLDER, one by one and by snapshot)
    xet_client.py snapshot REPO_ID FOLDER              (snapshot_download alone, into the cache)
    xet_client.py download-at REPO_ID REVISION PATH_IN_REPO EXPECTED_FILE   (one file of one revision)
    xet_client.py preupload REPO_ID LOCAL_FILE PATH_IN_REPO   (upload the bytes, commit nothing)

Prints one JSON line with what it saw.
"""

import filecmp
import json
import os
import sys

from huggingface_hub import CommitOperationAdd, HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.utils._runtime import is_xet_available


def _files(folder: str) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(root, name), folder).replace(os.sep, "/")
        for root, _, names in os.walk(folder)
        for name in names
    )


def main() -> None:
    assert not constants.HF_HUB_DISABLE_XET and is_xet_available(), "this client must run with Xet on"
    command, repo_id = sys.argv[1], sys.argv[2]
    api = HfApi()
    if command == "upload-folder":
        api.create_repo(repo_id, exist_ok=True)
        info = api.upload_folder(folder_path=sys.argv[3], repo_id=repo_id, commit_message="upload through Xet")
        print(json.dumps({"commit": info.oid, "files": sorted(api.list_repo_files(repo_id))}))
    elif command == "upload-file":
        kind = sys.argv[5] if len(sys.argv) > 5 else None
        space = {"space_sdk": "static"} if kind == "space" else {}
        api.create_repo(repo_id, repo_type=kind, exist_ok=True, **space)
        info = api.upload_file(path_or_fileobj=sys.argv[3], path_in_repo=sys.argv[4], repo_id=repo_id, repo_type=kind)
        print(json.dumps({"commit": info.oid}))
    elif command == "download":
        folder, out = sys.argv[3], sys.argv[4]
        single = {}
        for name in _files(folder):
            path = hf_hub_download(repo_id, name, local_dir=os.path.join(out, "single"))
            single[name] = filecmp.cmp(path, os.path.join(folder, name), shallow=False)
        snapshot = snapshot_download(repo_id, local_dir=os.path.join(out, "snapshot"))
        same = {name: filecmp.cmp(os.path.join(snapshot, name), os.path.join(folder, name), shallow=False)
                for name in _files(folder)}
        print(json.dumps({"single": single, "snapshot": same}))
    elif command == "snapshot":
        folder = sys.argv[3]
        snapshot = snapshot_download(repo_id)
        same = {name: filecmp.cmp(os.path.join(snapshot, name), os.path.join(folder, name), shallow=False)
                for name in _files(folder)}
        print(json.dumps({"snapshot": same, "files": _files(snapshot)}))
    elif command == "download-at":
        revision, name, expected = sys.argv[3], sys.argv[4], sys.argv[5]
        path = hf_hub_download(repo_id, name, revision=revision)
        print(json.dumps({"same": filecmp.cmp(path, expected, shallow=False)}))
    elif command == "preupload":
        api.preupload_lfs_files(repo_id, [CommitOperationAdd(path_in_repo=sys.argv[4], path_or_fileobj=sys.argv[3])])
        print(json.dumps({"preuploaded": sys.argv[4]}))
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main()
