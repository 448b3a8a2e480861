"""The Xet protocol, server side, as published in the xet-core specification.

One job per module: ``hashes`` (chunk, xorb, file and verification hashes and their string form),
``xorb`` (parse and verify uploaded xorbs, decode chunks), ``shard`` (parse uploaded shards, write
dedupe shards), ``tokens`` (CAS access tokens and signed fetch URLs), ``store`` (where everything
lives in the hub's Storage), ``reconstruct`` (file ranges as chunk ranges, JSON or bytes),
``register`` (verify and register the files of a shard) and ``routes`` (the HTTP routes).
"""
