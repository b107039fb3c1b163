"""Model store: the catalog of known provers and the local Hugging Face cache."""
