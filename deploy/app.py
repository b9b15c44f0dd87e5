#!/usr/bin/env python3
"""CDK entry point: ``cdk synth`` / ``cdk deploy`` run it (cdk.json), or ``python app.py``."""

from __future__ import annotations

import os

# jsii warns loudly on Node 20; the synth does not depend on the Node version.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from changelake_deploy.app import build_app

if __name__ == "__main__":
    app, _ = build_app()
    app.synth()
