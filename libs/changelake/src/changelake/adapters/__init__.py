"""The core's AWS adapters (the `aws` extra): the client factory and the S3 object store.

The only modules of the core that import boto3/botocore (ADR 0029); services import them from
their composition roots and their own adapters.
"""
