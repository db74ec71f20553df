"""Wire contracts: msgspec Structs, error codes, signing helpers. Imports nothing of ours."""
