"""pyprometheus' ``contrib`` package (``contrib.uwsgi_features``)."""
