#!/bin/sh
# Container entrypoint of the KCL consumer (ECS): render the MultiLangDaemon's properties from
# the CHANGELAKE_* settings, then exec the Java daemon in place of this process, so the JVM is
# PID 1 and receives ECS's SIGTERM itself (it then asks each record processor to checkpoint).
# The daemon starts `python -m changelake_consumer record-processor` once per leased shard.
set -eu

# The worker id is fixed here (CHANGELAKE_KCL_WORKER_ID, else a random one) and exported, so the
# record processors fence their S3 writes with this worker's leases (ADR 0042, 0043).
exec python -c '
import os
from changelake_consumer.kcl_properties import kcl_command, with_worker_id
from changelake_consumer.settings import ConsumerSettings

settings = with_worker_id(ConsumerSettings())
os.environ["CHANGELAKE_KCL_WORKER_ID"] = str(settings.kcl_worker_id)
command = kcl_command(settings)  # writes the .properties, finds java and the jars
os.execvp(command[0], command)
'
