"""Read-only git over smart HTTP: ``git clone`` and ``git fetch`` (protocol v2 and v0) and the
git-lfs download API, served from the hub's manifests and blobs.

``objects`` hashes git objects, ``lineage`` gives every commit its git id, ``pktline`` and ``pack``
speak the wire format, ``upload_pack`` answers ``ls-refs`` and ``fetch``, ``routes`` puts them on
HTTP (with the LFS download batch and refusal of pushes).
"""
