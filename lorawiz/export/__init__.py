"""Exporting a model for other runtimes: `lorawiz export gguf` (llama.cpp, Ollama, LM Studio).

llamacpp.py finds llama.cpp's own converter and quantiser and runs them; ollama.py writes the Modelfile;
gguf.py puts it together (merge, convert, quantise, check, write atomically).
"""
