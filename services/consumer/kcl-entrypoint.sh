#!/bin/sh
# Container entrypoint of the KCL consumer (ECS): render the MultiLangDaemon's properties from
# the CHANGELAKE_* settings, then exec the Java daemon in place of this process, so the JVM is
# PID 1 and receives ECS's SIGTERM itself (it then asks each record processor to checkpoint).
# The daemon starts `python -m changelake_consumer record-processor` once per leased shard.
set -eu

exec python -c '
import os
from changelake_consumer.kcl_properties import kcl_command
from changelake_consumer.settings import ConsumerSettings

command = kcl_command(ConsumerSettings())  # writes the .properties, finds java and the jars
os.execvp(command[0], command)
'
