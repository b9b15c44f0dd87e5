"""changelake's AWS CDK app: the pipeline on ECS Fargate, Kinesis, Firehose, S3, Glue, Athena."""
