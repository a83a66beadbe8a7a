"""Test helpers shipped with the package.

* :mod:`reelpick.testing.postgres`: a throwaway PostgreSQL server for tests of the PostgreSQL
  event log.
* :mod:`reelpick.testing.fuzz`: a schemathesis fuzzer for the service (needs the ``dev`` extra).
"""
