"""``taxsync doctor``: probe the assumptions taxsync makes about the Mixpeek API.

A scripted, self-cleaning run in a namespace the user names: it creates uniquely named
probe taxonomies (``taxsync-doctor-<random>``, marked in their metadata), reads, lists,
patches and versions them, provokes a 409 and a 422, and, only for the collections the
user names, attaches, detaches and restores their ``taxonomy_applications``. Each
assumption becomes one ``Check``: ``ok``, ``differs`` (with what the server did and what
taxsync does about it) or ``skipped``. Whatever it created is deleted, and every
collection it wrote to is restored, in a ``finally``: on failure, Ctrl-C and SIGTERM too
(see ``signals``). A namespace holding taxonomies taxsync manages is probed only with the
caller's consent, asked before anything is written.

The package: ``probe`` (one run, step by step), ``state`` (what a run holds),
``taxonomies`` and ``collections`` (the checks), ``cleanup``, ``signals`` and ``report``.
"""

from __future__ import annotations

from taxsync.doctor.probe import Probe
from taxsync.doctor.report import REPORT_UPSTREAM, Check, DoctorReport, Status
from taxsync.doctor.signals import patient
from taxsync.doctor.state import PROBE_MARKER, PROBE_PREFIX, UNKNOWN_KEY, probe_config

__all__ = [
    "PROBE_MARKER",
    "PROBE_PREFIX",
    "REPORT_UPSTREAM",
    "UNKNOWN_KEY",
    "Check",
    "DoctorReport",
    "Probe",
    "Status",
    "patient",
    "probe_config",
]
