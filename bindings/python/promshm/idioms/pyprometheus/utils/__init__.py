"""pyprometheus' ``utils`` package (``utils.exposition``)."""
