"""reasoner_hub (the ``reasoner-hub`` command): a Hugging-Face-compatible hub over a folder or an S3 bucket.

For development, CI and air-gapped demos: the unchanged ``huggingface_hub``, ``datasets`` and
``transformers`` clients download, upload, list and push against it through ``HF_ENDPOINT``, over
the Xet protocol (their default when ``hf_xet`` is installed; see ``xet/``) or LFS. Run it with ``reasoner-hub serve --storage DIR|s3://BUCKET[/prefix]`` or in-process::

    from reasoner_hub import HubServer
    with HubServer("/tmp/hub") as hub:
        ...  # hub.url

Layout in the bucket (or folder), per repo ``<type>s/<org>/<name>/`` (``models/``, ``datasets/``)::

    models/org/name/config.json                  plain files of the head of ``main``: readable by
    models/org/name/model.safetensors            any S3 tool (``aws s3 ls``), refreshed after commits
    models/org/name/.hub/repo.json               repo record (type, private, createdAt, generation);
                                                 its presence is what makes the repo exist
    models/org/name/.hub/refs/heads/<branch>     {"commit": id}: the branch head (ref object)
    models/org/name/.hub/refs/tags/<tag>         {"commit": id}
    models/org/name/.hub/commits/<id>.json       immutable commit manifest: parents, title, author,
                                                 date, every path -> size, sha256, git oid, lfs,
                                                 Xet hash; the git commit object whose id is <id>
    models/org/name/.hub/blobs/<sha256>          immutable file contents, by sha256
    models/org/name/.hub/branches/<branch>/...   plain files of the head of other branches
    models/org/name/.hub/views/<branch>.json     which commit the plain files currently show
    models/org/name/.hub/xet/...                 Xet files registered in the repo (xet/store.py)
    .hub/xet/xorbs/<hash>, .hub/xet/...          Xet xorbs, shared by all repos (deduped chunks)
    .hub-journal/<hash>.json                     intents of unfinished creates, deletes, moves and
                                                 view refreshes
    .hub-leases/hub-<id>, gc-<id>  (S3)          who serves or collects the storage (storelock.py)
    .locks/serving  (folder storage)             flock: shared by serving hubs, exclusive for gc
    .tmp/spool-*/  (folder storage)              this process's temporary files (swept at start-up)

Branch and tag names are percent-quoted in keys (``feature%2Fx``). The server reads only the
``.hub/`` objects; the plain files are a view for people and tools (never edited in place by the
hub, and rewritten from the blobs when a commit changes them).

Commits are atomic: blobs, then the manifest, then one conditional write of the ref (S3
``If-Match``/``If-None-Match``; an ``fcntl``-locked compare-and-swap on a folder). A reader always
resolves a revision to one complete manifest. Commits to one branch are serialised by an
in-process lock; across processes a lost conditional write is retried on the new head, unless the
client sent ``parentCommit``, in which case it gets 412 as on the Hugging Face Hub. The plain view
is refreshed after the ref moves, so it may trail the ref for the time of a copy.

Tokens carry an owner, org memberships and a role; who may read and write which namespace is
decided in permissions.py, as on the Hugging Face Hub.

Crash safety: a repo exists for clients when its record has no ``state``; creating, deleting and
moving go through ``creating``/``deleting`` states and one intent journal (lifecycle.py,
moves.py), and ``HubServer`` runs start-up recovery (``recovery.py``) before serving: temporary
files of dead processes removed, half-done deletes finished, half-done creates undone, moves
finished or undone, plain views rebuilt. Each repo has a readers-writer gate (locks.py): commits,
uploads and squashes share it, creates, deletes and moves hold it alone (a move both repos'
gates, in name order), always taken before a branch lock. Limits on request sizes are in
``limits.py``.

Commit ids are git commit ids: trees are built from the files' git blob ids (an LFS or Xet file is
the blob of its LFS pointer), so ``git clone`` (``git/``, read-only smart HTTP with git-lfs
downloads) shows the ids the API gives. Commits stored before that have random ids and get git
objects synthesised from their manifests (other ids in git, the same files).

Not implemented: pull requests, gated repos, ``git push``. Uploaded objects of
failed commits stay in ``.hub/blobs/`` (harmless; removed with the repo). Xorbs stay in
``.hub/xet/`` when the repos that used them are deleted (readable through no repo) until
``reasoner-hub gc`` removes them (``xet/gc.py``).
"""

from reasoner_hub.server import HubServer

__all__ = ["HubServer"]
