"""Suite files shipped with lrbench (installed as the package ``lrbench.suites``)."""
