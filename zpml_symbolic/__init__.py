"""zpml_symbolic: the compiler."""
