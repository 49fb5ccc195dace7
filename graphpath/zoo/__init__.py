"""graphpath's own reference builders of the YOLO generations (needs the ``torch`` extra)."""
