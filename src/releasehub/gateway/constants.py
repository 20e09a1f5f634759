"""Names the CLI shares with the gateway, in a module that imports nothing (the CLI starts fast)."""

DEFAULT_TIER = "default"  # the tier of a key whose repos' policies declare none
