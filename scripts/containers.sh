#!/usr/bin/env bash
# Container engine helpers behind `make images`, `make base-images`, `make compose-test`.
#   scripts/containers.sh engine         print docker|podman (installs podman when no Docker
#                                        daemon answers and podman is missing; needs root)
#   scripts/containers.sh compose ARGS   docker compose / podman-compose with the project's flags
#   scripts/containers.sh base-images    stand-in base images from Debian packages (mmdebstrap)
#   scripts/containers.sh images         build every image of containers/images.txt
# Options (environment): BASE=official|local (base images: the pinned official ones, or the
# stand-ins of `base-images`), CA_BUNDLE=<file> (opt-in: build steps that download trust it;
# a build secret, never written to a layer), ENGINE=docker|podman (skip the detection).
# ADR 0020 explains the choices (podman + runc, podman-compose, the deny-list .dockerignore).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# podman: runc (crun fails on the CI machines' cgroup setup), ulimits the sandbox allows.
export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/containers/containers.conf}"

PYTHON_STANDIN="localhost/changelake/python-base:3.11-bookworm"
LAMBDA_STANDIN="localhost/changelake/lambda-base:3.11-bookworm"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { printf '%s\n' "$*" >&2; }

apt_install() {
    if [ "$(id -u)" != 0 ]; then
        log "error: missing $*; install them (apt-get install $*) or run as root"
        exit 1
    fi
    log "installing $* (apt)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

ensure_podman() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v podman-compose >/dev/null || missing+=(podman-compose)
    command -v runc >/dev/null || missing+=(runc)
    [ -x /usr/lib/podman/netavark ] || missing+=(netavark)
    [ -x /usr/lib/podman/aardvark-dns ] || missing+=(aardvark-dns)
    command -v iptables >/dev/null || missing+=(iptables)
    if [ "${#missing[@]}" -gt 0 ]; then
        # golang-github-containernetworking-plugins: none; netavark is the network backend.
        apt_install "${missing[@]}" uidmap fuse-overlayfs
    fi
}

engine() {
    if [ -n "${ENGINE:-}" ]; then
        echo "$ENGINE"
    elif docker info >/dev/null 2>&1; then
        echo docker
    else
        ensure_podman
        echo podman
    fi
}

compose() {
    local eng project
    eng="$(engine)"
    if [ "$eng" = docker ]; then
        exec docker compose -f "$ROOT/docker-compose.yml" "$@"
    fi
    # podman-compose 1.0.3 ignores the file's `name:` (pass the project name) and `profiles:`
    # (name the services: make compose-up does), and its `down` leaves the network behind.
    project="${COMPOSE_PROJECT_NAME:-changelake}"
    podman-compose -p "$project" -f "$ROOT/docker-compose.yml" "$@"
    if [ "${1:-}" = down ] && podman network exists "${project}_default"; then
        podman network rm "${project}_default" >/dev/null
    fi
}

base_images() {
    local eng work
    eng="$(engine)"
    command -v mmdebstrap >/dev/null || apt_install mmdebstrap
    work="$(mktemp -d)"
    # (a RETURN trap outlives the function: reset it, or it fires again with $work unset)
    trap 'rm -rf "$work"; trap - RETURN' RETURN
    # bookworm + its python3 (3.11): the release and Python minor of python:3.11-slim-bookworm.
    # Like that image: `python` and `pip` on PATH, pip may install outside a venv, no docs.
    log "mmdebstrap bookworm from $DEBIAN_MIRROR"
    mmdebstrap --variant=minbase --quiet \
        --include=python3,python3-venv,python3-pip,ca-certificates,netbase,tzdata \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --customize-hook='rm -f "$1"/usr/lib/python3.11/EXTERNALLY-MANAGED' \
        --customize-hook='ln -sf /usr/bin/python3 "$1"/usr/local/bin/python' \
        --customize-hook='ln -sf /usr/bin/pip3 "$1"/usr/local/bin/pip' \
        --customize-hook='mkdir -p "$1"/var/task' \
        --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
        bookworm "$work/rootfs.tar" "$DEBIAN_MIRROR"
    "$eng" import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' \
        "$work/rootfs.tar" "$PYTHON_STANDIN" >/dev/null
    # The Lambda stages need only LAMBDA_TASK_ROOT and pip: this stand-in builds them (and the
    # tests import from it), but it is not a Lambda runtime (no Runtime Interface Client/RIE).
    printf 'FROM %s\nENV LAMBDA_TASK_ROOT=/var/task\nWORKDIR /var/task\n' "$PYTHON_STANDIN" \
        | "$eng" build -t "$LAMBDA_STANDIN" - >&2
    log "built $PYTHON_STANDIN and $LAMBDA_STANDIN"
}

images() {
    local eng args=() base_args tag dockerfile target start seconds report
    eng="$(engine)"
    case "${BASE:-official}" in
        official) ;;
        local)
            if ! "$eng" image inspect "$PYTHON_STANDIN" "$LAMBDA_STANDIN" >/dev/null 2>&1; then
                base_images
            fi
            ;;
        *) log "error: BASE must be official or local, not ${BASE}"; exit 2 ;;
    esac
    if [ -n "${CA_BUNDLE:-}" ]; then
        [ -s "$CA_BUNDLE" ] || { log "error: CA_BUNDLE=$CA_BUNDLE is not a file"; exit 2; }
        args+=(--secret "id=ca_bundle,src=$CA_BUNDLE")
    fi
    if [ "$eng" = podman ]; then
        # Docker image format: OCI (podman's default) has no HEALTHCHECK.
        args+=(--format docker)
    else
        export DOCKER_BUILDKIT=1
    fi
    report="$(mktemp)"
    while read -r tag dockerfile target; do
        case "$tag" in ''|'#'*) continue ;; esac
        log "== $eng build $tag ($dockerfile, target $target)"
        base_args=()
        if [ "${BASE:-official}" = local ]; then
            # Only the ARGs a Dockerfile declares (the engines warn about unused ones).
            base_args+=(--build-arg "PYTHON_BASE=$PYTHON_STANDIN")
            if grep -q '^ARG LAMBDA_BASE=' "$ROOT/$dockerfile"; then
                base_args+=(--build-arg "LAMBDA_BASE=$LAMBDA_STANDIN")
            fi
        fi
        start=$(date +%s)
        if [ "$target" = - ]; then
            "$eng" build "${args[@]}" "${base_args[@]}" -f "$ROOT/$dockerfile" -t "$tag" "$ROOT" >&2
        else
            "$eng" build "${args[@]}" "${base_args[@]}" -f "$ROOT/$dockerfile" --target "$target" -t "$tag" "$ROOT" >&2
        fi
        seconds=$(( $(date +%s) - start ))
        printf '%-34s %5ss %s\n' "$tag" "$seconds" \
            "$("$eng" image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.0f MB", $1/1e6}')" >>"$report"
    done <"$ROOT/containers/images.txt"
    log "image                              build  size"
    cat "$report" >&2
    rm -f "$report"
}

case "${1:-}" in
    engine) engine ;;
    compose) shift; compose "$@" ;;
    base-images) base_images ;;
    images) images ;;
    *) log "usage: $0 engine|compose ARGS|base-images|images"; exit 2 ;;
esac
