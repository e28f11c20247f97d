"""Things lorawiz builds for itself: a tokenizer (and later a tiny model and sample data) that need no download."""
