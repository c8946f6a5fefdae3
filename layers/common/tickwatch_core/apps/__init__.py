"""The APIs: one app each, served by Lambda, the local stack and the tests alike."""
