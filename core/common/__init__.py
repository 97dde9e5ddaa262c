"""Plumbing every stage uses: errors, the command wrapper, console, atomic writes, digests, paths,
the registry, caches, statistics."""
