"""Back ends: the numpy reference, the torch module (FX graphs and generated reverse mode)
and the input checks they share. The ONNX back end and the strict evaluator are
:mod:`zpml_symbolic.emit.onnx_emit` and :mod:`zpml_symbolic.emit.strict`."""
