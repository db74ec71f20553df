"""Authentication: operator and shopper JWTs, partner request signatures."""
