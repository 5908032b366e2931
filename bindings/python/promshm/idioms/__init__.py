"""Idiom layers for code migrating from other Python metrics libraries.

Each submodule keeps the API of one library whose documents promshm follows,
on top of promshm's shared area, so that changing the import is the whole
migration:

- :mod:`promshm.idioms.phanos` — phanos' profiler (``@profile``, handlers,
  dict configuration);
- :mod:`promshm.idioms.pytheus` — pytheus' metrics, partial and default
  labels, registry prefixes and backend selection;
- :mod:`promshm.idioms.instrumentor` — instrumentor's namespaced registries
  with batched ``transfer()``;
- :mod:`promshm.idioms.pyprometheus` — pyprometheus' registries and storages
  (local memory, uWSGI).

Where promshm deliberately differs from a library, that submodule's docstring
says so.
"""
