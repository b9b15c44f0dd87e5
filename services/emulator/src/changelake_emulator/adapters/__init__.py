"""The emulator's adapters: the only modules of the service that import boto3/botocore
(its own clients of the moto server it runs; ADR 0029)."""
