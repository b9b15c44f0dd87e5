"""The lake's AWS adapters: the only modules of changelake_lake that import boto3 or botocore."""
