"""The Hugging Face Hub-compatible HTTP surface: thin routes over `repos/` and `access/`."""
