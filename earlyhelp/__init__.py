"""earlyhelp: the Early Help case-flow engine. The sub-packages live in the repository's top-level folders."""
