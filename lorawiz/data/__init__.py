"""Dataset readers, writers, shape detection and conversion, shared by format, train and eval."""
