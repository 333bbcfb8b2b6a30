"""rtl.fabric"""

BLOCKS: dict = {}
