"""The broker port (wake-ups, cancel signals, run event streams) and its adapters."""
