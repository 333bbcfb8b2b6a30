"""cocotb testbenches of the L2 cache slice (rtl/cache)."""
