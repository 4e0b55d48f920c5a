"""Recording run metadata from EventBridge events: parse, merge, store."""
