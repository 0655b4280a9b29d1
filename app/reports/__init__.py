"""What comes in: stored inbound messages, processing, threading, bounces, triage."""
