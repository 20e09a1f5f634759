"""Repository webhooks: URLs an owner registers to receive HMAC-signed events.

`service` registers webhooks and queues deliveries in the caller's transaction (an outbox);
`dispatcher` sends them from a background thread of each server process; `routes` is the HTTP
surface. This module imports none of them, so that `releasehub.events` can import `service`
without pulling in the web layer.
"""
