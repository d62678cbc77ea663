"""taxsync: a declarative GitOps reconciler for Mixpeek taxonomies."""

__version__ = "0.1.0"
