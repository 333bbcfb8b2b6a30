"""rtl.cache"""

BLOCKS: dict = {}
