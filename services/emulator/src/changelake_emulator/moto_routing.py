"""moto's per-request routing without a directory listing per request (docs/adr/0037).

``DomainDispatcherApplication.get_backend_for_host`` runs on every request, under one lock
shared by all request threads, and starts with ``host in backends.list_of_moto_modules()``:
an ``os.listdir`` of moto's package plus one ``os.path.isdir`` per entry (~170 stat calls),
then up to several hundred URL regexes. Profiling ``changelake bench load`` put the routing at
8 % of the emulator process' samples. The answer depends on the host alone and moto's package
does not change while the process runs, so both are memoized: the module list once, the
backend per host (bounded; the emulator sees a handful of host names).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto import backends
from moto.moto_server import werkzeug_app

_lock = threading.Lock()
_installed = False
_original_list_of_moto_modules = backends.list_of_moto_modules
_original_get_backend_for_host = werkzeug_app.DomainDispatcherApplication.get_backend_for_host


@functools.cache
def _moto_modules() -> frozenset[str]:
    return frozenset(_original_list_of_moto_modules())


def list_of_moto_modules() -> Iterable[str]:
    """moto's service modules (its package's folders), listed once per process."""
    return _moto_modules()


def _cached_backend_for_host() -> Callable[[Any, str | None], Any]:
    cache: dict[str | None, Any] = {}

    def get_backend_for_host(self: Any, host: str | None) -> Any:
        if host in cache:
            return cache[host]
        backend = _original_get_backend_for_host(self, host)
        if len(cache) < 1024:  # host names come from requests: keep the memo bounded
            cache[host] = backend
        return backend

    return get_backend_for_host


def install() -> None:
    """Patch moto's routing (idempotent; affects every moto server in this process)."""
    global _installed
    with _lock:
        if _installed:
            return
        backends.list_of_moto_modules = list_of_moto_modules
        dispatcher: Any = werkzeug_app.DomainDispatcherApplication
        dispatcher.get_backend_for_host = _cached_backend_for_host()
        _installed = True
