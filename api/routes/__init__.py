"""The route families, one module each; ``kray.api.app`` includes them in order."""
