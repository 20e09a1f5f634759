"""Repositories, immutable commits, refs (branches and tags), file entries and model cards."""
