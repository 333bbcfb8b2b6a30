"""rtl.tensor"""

BLOCKS: dict = {}
