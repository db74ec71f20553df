"""The double-entry ledger. The door is `ledger.service`; `ledger.verify` checks the books."""
