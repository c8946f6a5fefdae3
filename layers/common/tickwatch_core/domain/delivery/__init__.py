"""Delivery, pure: destinations, messages per channel, templates, pacing, retries, signatures."""
