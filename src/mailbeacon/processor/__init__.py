"""The processor: hits become judged, attributed events and aggregates."""
