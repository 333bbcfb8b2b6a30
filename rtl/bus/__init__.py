"""rtl.bus"""

BLOCKS: dict = {}
