"""changelake shared library: the contracts every service imports.

Pure core (no AWS SDK): :mod:`wire`, :mod:`ddb_json`, :mod:`events`, :mod:`layout`,
:mod:`timeutil`, :mod:`settings`, :mod:`ports`. Adapters (boto3 allowed, extra ``aws``):
:mod:`adapters.aws`, :mod:`adapters.s3_store`. Test fakes and builders live in the dev-only
``changelake_testsupport`` (libs/testsupport), never in this package.
"""

__version__ = "0.1.0"
