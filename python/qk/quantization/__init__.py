"""qk.quantization: quantization shared by PTQ and QAT, on the graph IR.

`graph.py`: which nodes are quantized, observers on values, conversion to
integer nodes on qk's kernels (reached through qk.ptq.prepare / calibrate /
convert / quantize_dynamic when the model is a qk.graph.GraphModule).
`smooth.py`: SmoothQuant, activation outliers migrated into the weights
(qk.ptq.smooth_quant).
"""
