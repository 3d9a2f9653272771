"""Course subscriptions from dcb.events: one decision per command over the events it needs."""
