"""The catalog's adapters: the only modules of the service that import boto3/botocore
(Glue, S3 listing, SQS; ADR 0029)."""
