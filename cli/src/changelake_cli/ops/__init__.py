"""Operations on a running lake: backfill, reconcile, re-drive (docs/adr/0030, 0031)."""
