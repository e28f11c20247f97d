"""The run configuration: the knob table (schema), files, layers with typed sources, validation, resolution."""
