"""The email counter, observed here and listed with the others in gateway/metrics.py."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["EMAILS"]

# reason: points_expiring, tier_changed, referral_rewarded, statement_ready, sign_in_code,
# membership_renewal.
# outcome: sent, retry (a transient failure, tried again later), failed, duplicate (already
# claimed), dropped (no longer allowed at a retry), skipped_no_address, skipped_no_consent,
# skipped_erased. Both label sets are closed.
EMAILS = Counter(
    "coalition_emails", "Email decisions and sends, by reason and outcome", ["reason", "outcome"]
)
