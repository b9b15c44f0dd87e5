"""The producer's adapters: the only modules of the service that import boto3/botocore."""
