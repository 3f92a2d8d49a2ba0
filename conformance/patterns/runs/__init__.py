"""What runs for each pattern kind: imported lazily through the records of :mod:`conformance.patterns`."""
