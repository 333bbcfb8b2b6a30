"""rtl.noc"""

BLOCKS: dict = {}
