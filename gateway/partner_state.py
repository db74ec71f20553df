"""What the partner gateway keeps per process: the key box and housekeeping clocks."""

from __future__ import annotations

from dataclasses import dataclass

from partners.keybox import KeyBox


@dataclass
class PartnerGateway:
    keybox: KeyBox
    nonces_pruned_at_s: float = 0.0

    def prune_due(self, now_s: float, interval_s: float) -> bool:
        """True at most once per `interval_s` in this process (other processes prune too)."""
        if now_s - self.nonces_pruned_at_s < interval_s:
            return False
        self.nonces_pruned_at_s = now_s
        return True
