"""Triggered flows: EventBridge rules from @trigger/@trigger_on_finish, and the runs they start."""
