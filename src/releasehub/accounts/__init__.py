"""Users, organisations, memberships and hashed, scoped access tokens."""
