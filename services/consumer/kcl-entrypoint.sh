#!/bin/sh
# Container entrypoint of the KCL consumer: render the MultiLangDaemon properties from the
# CHANGELAKE_* settings, then exec the Java daemon (PID 1 gets ECS's SIGTERM directly).
# The daemon starts `python -m changelake_consumer.kcl_processor` once per leased shard.
set -eu

CONF_DIR="${KCL_CONFIG_DIR:-/tmp/kcl}"
PROPERTIES="$CONF_DIR/kcl.properties"
mkdir -p "$CONF_DIR"

python -c 'import sys
from changelake_consumer.kcl_properties import render
from changelake_consumer.settings import ConsumerSettings
sys.stdout.write(render(ConsumerSettings()))' > "$PROPERTIES"

JARS="$(python -c 'import os, amazon_kclpy; print(os.path.join(os.path.dirname(amazon_kclpy.__file__), "jars"))')"

# JAVA_OPTS is split on purpose (several JVM flags in one variable).
# shellcheck disable=SC2086
exec java ${JAVA_OPTS:-} -cp "$JARS/*:$CONF_DIR" \
    software.amazon.kinesis.multilang.MultiLangDaemon --properties-file "$PROPERTIES"
