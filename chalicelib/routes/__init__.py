"""The control plane's handlers, grouped by concern as Chalice Blueprints."""
