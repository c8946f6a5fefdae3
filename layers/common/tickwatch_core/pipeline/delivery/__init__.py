"""Delivery: recorded alerts -> every destination of their rule, paced, each exactly once."""
