"""cocotb testbenches of the FPGA board's host link (synth/)."""
