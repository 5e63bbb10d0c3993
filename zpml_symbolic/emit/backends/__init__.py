"""Back ends: the numpy reference, the torch module (FX graphs and generated reverse mode),
the strict evaluator (:mod:`.strict`), the ONNX graph (:mod:`.onnx`) and the input
checks they share."""
