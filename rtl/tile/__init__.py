"""rtl.tile"""

BLOCKS: dict = {}
