"""A ``cgmsim simulate`` run directory after the fact: read it back from its files
(``files``), draw it (``plots``), sum it up (``glycemia``, ``html_page``), export it
(``export``), and the ``report`` / ``export`` commands (``commands``)."""
