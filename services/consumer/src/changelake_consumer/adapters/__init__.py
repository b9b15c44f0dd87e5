"""The consumer's adapters: the only modules of the service that import boto3, botocore or
amazon_kclpy (ruff's banned-api rule, exempt by folder: ADR 0029)."""
