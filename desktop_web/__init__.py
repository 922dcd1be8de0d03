"""The browser UI: static ES modules served by the hub, no build step."""
