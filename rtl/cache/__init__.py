"""rtl.cache: one L2 slice (``CacheSlice``) and its parts; layouts in ``rtl.cache.layouts``."""


def _slice(fabric_config):
    from rtl.cache.slice import CacheSlice

    return CacheSlice(fabric_config.cache)


BLOCKS: dict = {"l2_slice": _slice}
