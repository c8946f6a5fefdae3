"""The pure domain: ticks, quotes and bars, intervals, indicators and rules. No AWS here."""
