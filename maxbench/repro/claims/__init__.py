"""The claims ledger: the papers' checkable claims, their experiments and decision rules."""
