"""rtl.numeric"""

BLOCKS: dict = {}
