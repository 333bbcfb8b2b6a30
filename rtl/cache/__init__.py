"""tessera.rtl.cache: one L2 slice (``CacheSlice``) and its parts; layouts in :mod:`.layouts`."""


def _slice(fabric_config):
    from tessera.rtl.cache.slice import CacheSlice

    return CacheSlice(fabric_config.cache)


BLOCKS: dict = {"l2_slice": _slice}
