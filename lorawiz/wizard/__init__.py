"""`lorawiz init`: the guided wizard. Every question has a flag; the wizard asks only what the flags left open."""
